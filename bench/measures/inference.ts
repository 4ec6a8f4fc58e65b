/** The inference stage on its own: bare ONNX Runtime, session options, decoding, ranking, and the Python peer. */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { SESSION_OPTIONS, topK } from '../../src/backends/local/runtime';
import { decodeRgb8, resizeRgb8 } from '../../src/images';
import { RESNET_INPUT } from '../models/resnet';
import type { Row } from '../results';
import { BATCH, median, ownPeakRssMiB, photos, resnetModel, ROOT, RUNS } from '../support';

/**
 * The bare loop: the same session settings as the worker, the same batch size, input
 * tensors decoded and resized beforehand. It cycles through several distinct batches and
 * makes a new tensor per run, as the pipeline does, so no input stays warm in the cache.
 */
export async function bareLoop(batch = BATCH, options = SESSION_OPTIONS): Promise<{ measure(images: number): Promise<number>; cpuMsPerImage: number }> {
  const session = await ort.InferenceSession.create(resnetModel(), options);
  const distinct = 3;
  const dir = await photos(batch * distinct);
  const files = readdirSync(dir)
    .sort()
    .slice(0, batch * distinct);
  const batches = Array.from({ length: distinct }, () => new Float32Array(batch * 224 * 224 * 3));
  for (const [i, file] of files.entries()) {
    resizeRgb8(await decodeRgb8(readFileSync(join(dir, file))), 224, 224, false, batches[Math.floor(i / batch)]!.subarray((i % batch) * 224 * 224 * 3));
  }
  const run = (b: number) => session.run({ [RESNET_INPUT]: new ort.Tensor('float32', batches[b % distinct]!, [batch, 224, 224, 3]) });
  await run(0); // warm-up
  const loop = {
    /** The CPU per image (all of this process's threads) of the last measure. */
    cpuMsPerImage: 0,
    async measure(images: number) {
      const runs = Math.max(1, Math.round(images / batch));
      const cpu = process.cpuUsage();
      const start = performance.now();
      for (let b = 0; b < runs; b++) await run(b);
      const seconds = (performance.now() - start) / 1000;
      const used = process.cpuUsage(cpu);
      loop.cpuMsPerImage = (used.user + used.system) / 1000 / (runs * batch);
      return (runs * batch) / seconds;
    },
  };
  return loop;
}

/** The bare loop's batch sizes: the ceiling is the best of them, not only the pipeline's. */
const CEILING_BATCHES = [1, 16, 64];

/**
 * The Python peer (bench/peer/peer.py): the plain loop a user would write instead, over the
 * same photos and model, its packages pinned into the tools venv by bench/peer/setup.sh.
 */
export function peerRate(dir: string, count: number): number {
  return peerRun(dir, count).imagesPerSecond;
}

/** The Python peer over the first `count` photos: its loop's rate, and its whole process's wall time (start and model load included). */
export function peerRun(dir: string, count: number): { imagesPerSecond: number; wallMs: number } {
  // The same photos as firstPhotos(dir, count): the first `count` by name.
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.jpg'))
    .sort()
    .slice(0, count)
    .map((f) => join(dir, f));
  const setup = spawnSync(join(__dirname, '..', 'peer', 'setup.sh'), { stdio: 'inherit' });
  if (setup.status !== 0) throw new Error('bench/peer/setup.sh failed');
  const database = join(ROOT, `peer-${Date.now()}.sqlite`);
  const python = join(__dirname, '..', '..', '.objinfer', 'tools', 'venv', 'bin', 'python');
  const start = performance.now();
  const run = spawnSync(python, [join(__dirname, '..', 'peer', 'peer.py'), resnetModel(), database, ...files], { encoding: 'utf8', maxBuffer: 1 << 20 });
  const wallMs = performance.now() - start;
  rmSync(database, { force: true });
  if (run.status !== 0) throw new Error(`the Python peer failed: ${run.stderr}`);
  return { imagesPerSecond: (JSON.parse(run.stdout) as { imagesPerSecond: number }).imagesPerSecond, wallMs };
}

export async function ceiling(): Promise<Row[]> {
  const rows: Row[] = [];
  for (const batch of CEILING_BATCHES) {
    const loop = await bareLoop(batch);
    const rates: number[] = [];
    for (let r = 0; r < RUNS; r++) rates.push(await loop.measure(Number(process.env.BENCH_CEILING_IMAGES ?? 384)));
    const rate = median(rates);
    rows.push({
      group: 'ceiling',
      benchmark: `ceiling: bare ONNX Runtime, ResNet-50-shaped, batch ${batch}`,
      result: `${rate.toFixed(1)} img/s (${(1000 / rate).toFixed(1)} ms/img), peak RSS ${ownPeakRssMiB().toFixed(0)} MiB`,
      figures: { batch, imagesPerSecond: rate, peakRssMiB: ownPeakRssMiB() },
    });
  }
  return rows;
}

/**
 * The session options the worker uses (SESSION_OPTIONS), each changed in one way, on the
 * bare loop at batch 32 (the worker's run size), alternating with the worker's own.
 */
export async function session(): Promise<Row[]> {
  const { extra, ...rest } = SESSION_OPTIONS;
  const variants: Record<string, ort.InferenceSession.SessionOptions> = {
    "graph optimisation 'extended' instead of 'all'": { ...SESSION_OPTIONS, graphOptimizationLevel: 'extended' },
    'memory arena off': { ...SESSION_OPTIONS, enableCpuMemArena: false },
    'memory pattern on': { ...SESSION_OPTIONS, enableMemPattern: true },
    'threads spin between runs (ONNX Runtime default)': rest,
    "execution mode 'parallel'": { ...SESSION_OPTIONS, executionMode: 'parallel' },
    'one intra-op thread': { ...SESSION_OPTIONS, intraOpNumThreads: 1 },
    'denormals as zero': { ...SESSION_OPTIONS, extra: { session: { ...(extra as { session: object }).session, set_denormal_as_zero: '1' } } },
  };
  const images = Number(process.env.BENCH_SESSION_IMAGES ?? 256);
  const worker = await bareLoop(32);
  const rows: Row[] = [];
  for (const [name, options] of Object.entries(variants)) {
    const variant = await bareLoop(32, options);
    const ratios: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const base = await worker.measure(images);
      ratios.push((await variant.measure(images)) / base);
    }
    const ratio = median(ratios);
    rows.push({
      group: 'session',
      benchmark: `session options: ${name}`,
      result: `${ratio.toFixed(2)}x the worker's settings (${ratios.map((x) => x.toFixed(2)).join(', ')})`,
      figures: { ratio },
    });
  }
  return rows;
}

/** Decoding and resizing alone, one image at a time. */
export async function images(): Promise<Row[]> {
  const rows: Row[] = [];
  for (const [width, height] of [
    [640, 480],
    [1920, 1080],
  ] as const) {
    for (const format of ['jpeg', 'png'] as const) {
      const dir = await photos(8, width, height, format);
      const bytes = readdirSync(dir)
        .sort()
        .slice(0, 8)
        .map((f) => readFileSync(join(dir, f)));
      const perImage: { decode: number; resize: number }[] = [];
      const tensor = new Float32Array(224 * 224 * 3); // reused, as a decoder reuses its pixel array
      for (let r = 0; r < RUNS; r++) {
        let decode = 0;
        let resize = 0;
        for (const image of bytes) {
          const t0 = performance.now();
          const decoded = await decodeRgb8(image);
          const t1 = performance.now();
          resizeRgb8(decoded, 224, 224, false, tensor);
          decode += t1 - t0;
          resize += performance.now() - t1;
        }
        perImage.push({ decode: decode / bytes.length, resize: resize / bytes.length });
      }
      const decode = median(perImage.map((p) => p.decode));
      const resize = median(perImage.map((p) => p.resize));
      rows.push({
        group: 'images',
        benchmark: `images: ${format.toUpperCase()} ${width}x${height} -> 224x224`,
        result: `decode ${decode.toFixed(1)} ms + resize ${resize.toFixed(1)} ms = ${(1000 / (decode + resize)).toFixed(0)} img/s on one thread`,
        figures: { decodeMs: decode, resizeMs: resize, imagesPerSecond: 1000 / (decode + resize) },
      });
    }
  }
  return rows;
}

/**
 * Ranking one image's scores (topK, on the worker's main thread for every image): the top
 * 5 of an ImageNet-sized and an ImageNet-21k-sized output, against sorting every class.
 */
export async function ranking(): Promise<Row[]> {
  const rows: Row[] = [];
  for (const classes of [1000, 21843]) {
    const labels = Array.from({ length: classes }, (_, i) => `class ${i}`);
    const scores = Array.from({ length: 64 }, () => Float32Array.from({ length: classes }, Math.random));
    const perImage = (rank: (row: Float32Array) => unknown) => {
      const times: number[] = [];
      for (let r = 0; r < RUNS + 1; r++) {
        const start = performance.now();
        for (const row of scores) rank(row);
        times.push((performance.now() - start) / scores.length);
      }
      return median(times.slice(1)); // the first pass warms the JIT up
    };
    const kept = perImage((row) => topK(row, labels, 5));
    const sorted = perImage((row) =>
      Array.from({ length: row.length }, (_, i) => i)
        .sort((a, b) => row[b]! - row[a]! || a - b)
        .slice(0, 5),
    );
    rows.push({
      group: 'ranking',
      benchmark: `ranking: top 5 of ${classes} classes, per image`,
      result: `${kept.toFixed(3)} ms (sorting every class: ${sorted.toFixed(3)} ms)`,
      figures: { classes, topKMs: kept, sortMs: sorted },
    });
  }
  return rows;
}
