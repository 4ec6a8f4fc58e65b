/**
 * Benchmarks (not part of the test gate): `make bench`, or `BENCH=ceiling,pipeline make bench`.
 * Each benchmark runs in a process of its own (so peak memory is its own), repeats
 * BENCH_RUNS times (default 3) and reports the median. Results: bench/results/latest.json
 * and latest.md, and the table on stdout.
 *
 *  ceiling      bare ONNX Runtime loop over pre-decoded, pre-resized tensors (ResNet-50-shaped, batch 16)
 *  session      ONNX Runtime session options, each against the worker's, on the bare loop
 *  images       decode + resize alone, JPEG and PNG, 640x480 and 1920x1080 -> 224x224
 *  pipeline     the whole inferencePipeline (dev server, worker process, DuckDB) over 200 and 2 000 JPEGs
 *  small        fixed costs: a 10-image run with the dev server and the worker already up
 *  incremental  a run with nothing new over 10 000 and 100 000 already-predicted objects
 *  growing      200 new JPEGs into a results table of 100 000 rows, against a new table
 *  bucket       200 new JPEGs in a bucket of 100 000 objects already predicted, against a new bucket
 *  firstrun     a first run over 20 000 tiny objects with a trivial model: the pipeline's cost per batch in a big bucket
 *  overhead     the pipeline with a trivial model: cost per batch and per image
 *  scaleout     the pipeline with one and with two worker processes on one task queue
 */
import { spawnSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { createBackend } from '../src/backends';
import type { RunSpec } from '../src/config';
import { SESSION_OPTIONS, topK } from '../src/backends/local/runtime';
import { Warehouse } from '../src/backends/local/warehouse';
import { writeColorModel } from '../src/demo';
import { decodeRgb8, resizeRgb8 } from '../src/images';
import { colorClassifierOnnx, colorLabelsFile } from '../src/models/colorClassifier';
import { RESNET_INPUT } from './models/resnet';
import { markdownResults, mergeRows, previousRows, type Results, type Row } from './results';
import {
  BATCH,
  BenchCluster,
  cpuMs,
  firstPhotos,
  readTurnProfile,
  type TurnProfile,
  median,
  ownPeakRssMiB,
  peakRssMiB,
  photos,
  resnetModel,
  ROOT,
  RUNS,
  writeConfig,
} from './support';

const BENCHMARKS: Record<string, () => Promise<Row[]>> = {
  ceiling,
  session,
  images,
  ranking,
  pipeline,
  small,
  incremental,
  growing,
  bucket,
  firstrun,
  overhead,
  scaleout,
};

/**
 * The bare loop: the same session settings as the worker, the same batch size, input
 * tensors decoded and resized beforehand. It cycles through several distinct batches and
 * makes a new tensor per run, as the pipeline does, so no input stays warm in the cache.
 */
async function bareLoop(batch = BATCH, options = SESSION_OPTIONS): Promise<{ measure(images: number): Promise<number>; cpuMsPerImage: number }> {
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
function peerRate(dir: string, count: number): number {
  // The same photos as firstPhotos(dir, count): the first `count` by name.
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.jpg'))
    .sort()
    .slice(0, count)
    .map((f) => join(dir, f));
  const setup = spawnSync(join(__dirname, 'peer', 'setup.sh'), { stdio: 'inherit' });
  if (setup.status !== 0) throw new Error('bench/peer/setup.sh failed');
  const database = join(ROOT, `peer-${Date.now()}.sqlite`);
  const python = join(__dirname, '..', '.objinfer', 'tools', 'venv', 'bin', 'python');
  const run = spawnSync(python, [join(__dirname, 'peer', 'peer.py'), resnetModel(), database, ...files], { encoding: 'utf8', maxBuffer: 1 << 20 });
  rmSync(database, { force: true });
  if (run.status !== 0) throw new Error(`the Python peer failed: ${run.stderr}`);
  return (JSON.parse(run.stdout) as { imagesPerSecond: number }).imagesPerSecond;
}

async function ceiling(): Promise<Row[]> {
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
async function session(): Promise<Row[]> {
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
async function images(): Promise<Row[]> {
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
async function ranking(): Promise<Row[]> {
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

/**
 * The whole pipeline over N photos, each run next to a bare-loop measurement taken just
 * before it (this machine's speed drifts by several per cent over minutes): infer-stage
 * rate, its ratio to the bare loop (medians over runs), and the worker's peak memory.
 */
async function pipeline(): Promise<Row[]> {
  const sizes = (process.env.BENCH_PIPELINE_IMAGES ?? '200,2000').split(',').map(Number);
  const dir = await photos(Math.max(...sizes));
  // The ceiling at its best batch size: 1 is far slower than 16 and 64 here (see `ceiling`).
  const loops = await Promise.all([16, 64].map((batch) => bareLoop(batch)));
  const peerUpTo = Number(process.env.BENCH_PEER_MAX_IMAGES ?? 500);
  const rows: Row[] = [];
  for (const size of sizes) {
    const cluster = await BenchCluster.start();
    const profileFile = join(ROOT, 'run', `profile-${process.pid}.json`);
    rmSync(profileFile, { force: true });
    const [worker] = await cluster.startWorkers(1, { OBJINFER_PROFILE: profileFile });
    const profiles: Record<string, number>[] = [];
    const rates: number[] = [];
    const ratios: number[] = [];
    const peerRatios: number[] = [];
    const peerRates: number[] = [];
    const walls: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      let bare = 0;
      let bareCpuMs = 0;
      for (const loop of loops) {
        const rate = await loop.measure(Math.min(size, 384));
        if (rate > bare) [bare, bareCpuMs] = [rate, loop.cpuMsPerImage];
      }
      const peer = size <= peerUpTo ? peerRate(dir, size) : undefined;
      const config = writeConfig(`pipeline-${size}-${r}`, {
        dataset: 'bench',
        sourceUris: firstPhotos(dir, size),
        model: { name: 'resnet', source: resnetModel() },
        batch: { size: BATCH, concurrency: 2 },
      });
      const turnsBefore = readTurnProfile(profileFile);
      const cpuBefore = { worker: cpuMs(worker!.pid!), server: cpuMs(cluster.server.pid), harness: cpuMs(process.pid) };
      const { summary, wallMs } = await cluster.run(config);
      if (summary.predicted !== size) throw new Error(`pipeline predicted ${summary.predicted} of ${size}`);
      const cpuAfter = { worker: cpuMs(worker!.pid!), server: cpuMs(cluster.server.pid), harness: cpuMs(process.pid) };
      profiles.push(profileOf(summary.inferDurationMs, size, turnsBefore, readTurnProfile(profileFile), cpuBefore, cpuAfter, { rate: bare, cpuMs: bareCpuMs }));
      const rate = summary.predicted / (summary.inferDurationMs / 1000);
      rates.push(rate);
      ratios.push(rate / bare);
      if (peer !== undefined) {
        peerRates.push(peer);
        peerRatios.push(rate / peer);
      }
      walls.push(wallMs);
    }
    const rss = peakRssMiB(worker!.pid!);
    await cluster.stop();
    const rate = median(rates);
    rows.push(profileRow(size, profiles));
    rows.push({
      group: 'pipeline',
      benchmark: `pipeline: ${size} JPEG 640x480, batch ${BATCH}, concurrency 2, one worker process`,
      result:
        `${rate.toFixed(1)} img/s in the infer stage = **${(100 * median(ratios)).toFixed(0)} % of the bare loop** at its best batch size, run just before (${ratios.map((x) => `${(100 * x).toFixed(0)} %`).join(', ')})` +
        (peerRatios.length
          ? `; **${median(peerRatios).toFixed(2)}x the Python peer** (${median(peerRates).toFixed(1)} img/s; ${peerRatios.map((x) => `${x.toFixed(2)}x`).join(', ')})`
          : '') +
        `; ${(median(walls) / 1000).toFixed(1)} s wall (${((median(walls) / 1000) * (rate / size)).toFixed(2)}x the infer stage); worker peak RSS ${rss.toFixed(0)} MiB`,
      figures: {
        images: size,
        imagesPerSecond: rate,
        ceilingRatio: median(ratios),
        ...(peerRatios.length ? { peerRatio: median(peerRatios), peerImagesPerSecond: median(peerRates) } : {}),
        wallSeconds: median(walls) / 1000,
        workerPeakRssMiB: rss,
      },
    });
  }
  return rows;
}

/**
 * Where an image's milliseconds go in the infer stage: time in CPU turns by what was
 * running (see cpuTurn's profile) plus the time outside any turn (activity round trips, waiting), so
 * the parts add up to the stage's wall time. Then the CPU budget: what the worker's threads,
 * its decoder processes and the Temporal dev server used over the whole run (provisioning
 * included), against the bare loop's CPU per image. Their sum over the cores is the least
 * wall time per image any scheduling of that work could reach.
 */
type RunCpu = Record<'worker' | 'server' | 'harness', ReturnType<typeof cpuMs>>;

function profileOf(
  inferMs: number,
  images: number,
  before: TurnProfile,
  after: TurnProfile,
  cpuBefore: RunCpu,
  cpuAfter: RunCpu,
  bare: { rate: number; cpuMs: number },
): Record<string, number> {
  const turn = (kind: keyof TurnProfile) => (after[kind] - before[kind]) / images;
  const inside = turn('inference') + turn('decode') + turn('warehouse');
  const used = (key: keyof RunCpu, part: keyof ReturnType<typeof cpuMs>) => (cpuAfter[key][part] - cpuBefore[key][part]) / images;
  const cpu = {
    cpuWorkerMainMs: used('worker', 'main'),
    cpuWorkerOtherThreadsMs: used('worker', 'threads'),
    cpuDecodersMs: used('worker', 'children'),
    cpuDevServerMs: used('server', 'main') + used('server', 'threads'),
    cpuBenchHarnessMs: used('harness', 'main') + used('harness', 'threads'),
  };
  return {
    stageMs: inferMs / images,
    bareMs: 1000 / bare.rate,
    inferenceMs: turn('inference'),
    decodeMs: turn('decode'),
    warehouseMs: turn('warehouse'),
    outsideTurnsMs: inferMs / images - inside,
    ...cpu,
    cpuTotalMs: Object.values(cpu).reduce((a, b) => a + b, 0),
    cpuBareLoopMs: bare.cpuMs,
  };
}

function profileRow(size: number, profiles: Record<string, number>[]): Row {
  const figures = Object.fromEntries(Object.keys(profiles[0]!).map((key) => [key, median(profiles.map((p) => p[key]!))]));
  const ms = (key: string) => figures[key]!.toFixed(1);
  const cores = cpus().length;
  return {
    group: 'pipeline',
    benchmark: `profile: ${size} JPEG 640x480, ms per image in the infer stage`,
    result:
      `${ms('stageMs')} ms = inference ${ms('inferenceMs')} (bare loop ${ms('bareMs')}) + decode ${ms('decodeMs')} (warehouse work beside it) + warehouse alone ${ms('warehouseMs')} + outside turns ${ms('outsideTurnsMs')}; ` +
      `CPU per image over the whole run: worker main thread ${ms('cpuWorkerMainMs')}, its other threads ${ms('cpuWorkerOtherThreadsMs')} (ONNX Runtime's pool among them), decoders ${ms('cpuDecodersMs')}, ` +
      `Temporal dev server ${ms('cpuDevServerMs')}, this bench's own process ${ms('cpuBenchHarnessMs')}: ${ms('cpuTotalMs')} in all, ${(figures.cpuTotalMs! / cores).toFixed(1)} ms on ${cores} cores; the bare loop's run alone uses ${ms('cpuBareLoopMs')}`,
    figures,
  };
}

/**
 * What a run costs beyond its images: 10 photos, with the dev server and a worker already
 * up and the model seen once (a warm-up run over other photos), each run on a new warehouse.
 */
async function small(): Promise<Row[]> {
  const dir = await photos(200);
  const cluster = await BenchCluster.start();
  await cluster.startWorkers(1);
  const run = (name: string, first: number) =>
    cluster.run(
      writeConfig(name, {
        dataset: 'bench',
        sourceUris: Array.from({ length: 10 }, (_, i) => join(dir, `p${String(first + i).padStart(5, '0')}.jpg`)),
        model: { name: 'resnet', source: resnetModel() },
      }),
    );
  await run('small-warmup', 190);
  const walls: number[] = [];
  const infers: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const { summary, wallMs } = await run(`small-${r}`, r * 10);
    if (summary.predicted !== 10) throw new Error(`the small run predicted ${summary.predicted} of 10`);
    walls.push(wallMs);
    infers.push(summary.inferDurationMs);
  }
  await cluster.stop();
  return [
    {
      group: 'small',
      benchmark: 'small: 10 JPEG 640x480, dev server and worker up, new warehouse each run',
      result: `${(median(walls) / 1000).toFixed(2)} s wall, of which ${(median(infers) / 1000).toFixed(2)} s in the infer stage`,
      figures: { wallSeconds: median(walls) / 1000, inferSeconds: median(infers) / 1000 },
    },
  ];
}

/** `size` tiny PNG files (made once): objects that cost nothing to list and are never decoded here. */
function tinyObjects(size: number, png: Buffer): string {
  const dir = join(ROOT, `objects-${size}`);
  mkdirSync(dir, { recursive: true });
  if (readdirSync(dir).length !== size) for (let i = 0; i < size; i++) writeFileSync(join(dir, `o${String(i).padStart(6, '0')}.png`), png);
  return dir;
}

/** A run with nothing new: objects made as tiny files and marked predicted in the table (no inference to set up). */
async function incremental(): Promise<Row[]> {
  const sizes = (process.env.BENCH_OBJECTS ?? '10000,100000').split(',').map(Number);
  const rows: Row[] = [];
  const cluster = await BenchCluster.start();
  const [worker] = await cluster.startWorkers(1);
  const models = await writeColorModel(join(ROOT, 'colour-model'));
  const png = await sharp({ create: { width: 2, height: 2, channels: 3, background: { r: 200, g: 30, b: 30 } } })
    .png()
    .toBuffer();
  for (const size of sizes) {
    const dir = tinyObjects(size, png);
    const config = writeConfig(`incremental-${size}`, {
      dataset: 'bench',
      sourceUris: [`${dir}/*.png`],
      model: { name: 'colors', source: models.model, labels: models.labels },
    });
    const listingSeconds = await seedPredictions(config);
    const listingPeakMiB = ownPeakRssMiB(); // the listing ran in this process, which holds little else
    const walls: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const { summary, wallMs } = await cluster.run(config);
      if (summary.predicted !== 0 || summary.alreadyDone !== size) throw new Error(`expected a no-op over ${size}, got ${JSON.stringify(summary)}`);
      walls.push(wallMs);
    }
    rows.push({
      group: 'incremental',
      benchmark: `incremental no-op: ${size} objects already predicted`,
      result:
        `${(median(walls) / 1000).toFixed(2)} s wall, 0 batches ` +
        `(the first listing, which read and hashed every file: ${listingSeconds.toFixed(1)} s, the bench process at ${listingPeakMiB.toFixed(0)} MiB peak RSS after it)`,
      figures: { objects: size, wallSeconds: median(walls) / 1000, firstListingSeconds: listingSeconds, firstListingPeakRssMiB: listingPeakMiB },
    });
  }
  const rss = peakRssMiB(worker!.pid!);
  await cluster.stop();
  rows.push({
    group: 'incremental',
    benchmark: 'incremental: worker peak RSS over those runs',
    result: `${rss.toFixed(0)} MiB`,
    figures: { workerPeakRssMiB: rss },
  });
  return rows;
}

/**
 * New images into a results table that already holds many rows (a scheduled re-run over a
 * growing bucket), against the same number into a new table, alternated: what a write costs
 * as the table grows. Each run gets 200 photos of its own.
 */
async function growing(): Promise<Row[]> {
  const tableRows = Number(process.env.BENCH_TABLE_ROWS ?? 100_000);
  const size = 200;
  const dir = await photos(size * (RUNS + 1));
  const hundreds = (run: number) => firstPhotos(dir, size * (run + 1)).slice(-size / 100);
  const cluster = await BenchCluster.start();
  await cluster.startWorkers(1);
  const warehouse = join(ROOT, 'run', 'growing.duckdb');
  rmSync(warehouse, { force: true });
  rmSync(`${warehouse}.wal`, { force: true });
  const base = { dataset: 'bench', model: { name: 'resnet', source: resnetModel() }, batch: { size: BATCH, concurrency: 2 } };
  const intoGrown = (run: number) =>
    writeConfig(`growing-${run}`, { ...base, sourceUris: hundreds(run), local: { warehouse, storage: join(ROOT, 'run', 'storage') } });
  const intoNew = (run: number) => writeConfig(`growing-new-${run}`, { ...base, sourceUris: hundreds(run) });
  const rate = async (config: RunSpec) => {
    const { summary } = await cluster.run(config);
    if (summary.predicted !== size) throw new Error(`growing: predicted ${summary.predicted} of ${size}`);
    return size / (summary.inferDurationMs / 1000);
  };
  await rate(intoGrown(0)); // makes the tables
  await new Warehouse(warehouse).use((db) =>
    db.run(
      `INSERT INTO bench.predictions SELECT 'file:///elsewhere/' || range || '.jpg', 1, (SELECT any_value(model_version) FROM bench.predictions), 'red', 0.5, [{'label': 'red', 'index': 0, 'score': 0.5}], NULL, 'seed', now() FROM range(${tableRows})`,
    ),
  );
  const grown: number[] = [];
  const fresh: number[] = [];
  for (let r = 1; r <= RUNS; r++) {
    if (r % 2) grown.push(await rate(intoGrown(r)));
    fresh.push(await rate(intoNew(r)));
    if (!(r % 2)) grown.push(await rate(intoGrown(r)));
  }
  await cluster.stop();
  return [
    {
      group: 'growing',
      benchmark: `growing table: ${size} new JPEG 640x480 into a results table of ${tableRows} rows, batch ${BATCH}`,
      result: `${median(grown).toFixed(1)} img/s in the infer stage, against ${median(fresh).toFixed(1)} into a new table in the same runs (${(median(grown) / median(fresh)).toFixed(2)}x)`,
      figures: { tableRows, imagesPerSecond: median(grown), newTableImagesPerSecond: median(fresh) },
    },
  ];
}

/**
 * A scheduled re-run over a bucket that grows: 200 new photos beside BENCH_BUCKET_OBJECTS
 * objects already predicted (the object table and the results table both hold them),
 * against the same 200 photos in a bucket of their own, alternated. What each batch's
 * search for its pending objects costs as the bucket grows.
 */
async function bucket(): Promise<Row[]> {
  const objects = Number(process.env.BENCH_BUCKET_OBJECTS ?? 100_000);
  const size = 200;
  const dir = await photos(size * RUNS);
  const hundreds = (run: number) => firstPhotos(dir, size * (run + 1)).slice(-size / 100);
  const png = await sharp({ create: { width: 2, height: 2, channels: 3, background: { r: 200, g: 30, b: 30 } } })
    .png()
    .toBuffer();
  const old = `${tinyObjects(objects, png)}/*.png`;
  const cluster = await BenchCluster.start();
  await cluster.startWorkers(1);
  const base = { dataset: 'bench', model: { name: 'resnet', source: resnetModel() }, batch: { size: BATCH, concurrency: 2 } };
  const warehouse = join(ROOT, 'run', `bucket-${objects}.duckdb`);
  rmSync(warehouse, { force: true });
  rmSync(`${warehouse}.wal`, { force: true });
  const local = { warehouse, storage: join(ROOT, 'run', 'storage') };
  await seedPredictions(writeConfig(`bucket-seed`, { ...base, sourceUris: [old], local }));
  const rate = async (config: RunSpec) => {
    const { summary } = await cluster.run(config);
    if (summary.predicted !== size) throw new Error(`bucket: predicted ${summary.predicted} of ${size}`);
    return size / (summary.inferDurationMs / 1000);
  };
  const grown: number[] = [];
  const fresh: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const intoGrown = () => rate(writeConfig(`bucket-${r}`, { ...base, sourceUris: [old, ...hundreds(r)], local }));
    const intoNew = () => rate(writeConfig(`bucket-new-${r}`, { ...base, sourceUris: hundreds(r) }));
    if (r % 2) fresh.push(await intoNew());
    grown.push(await intoGrown());
    if (!(r % 2)) fresh.push(await intoNew());
  }
  await cluster.stop();
  return [
    {
      group: 'bucket',
      benchmark: `growing bucket: ${size} new JPEG 640x480 beside ${objects} objects already predicted, batch ${BATCH}`,
      result: `${median(grown).toFixed(1)} img/s in the infer stage (${grown.map((x) => x.toFixed(1)).join(', ')}), against ${median(fresh).toFixed(1)} in a bucket of their own (${(median(grown) / median(fresh)).toFixed(2)}x)`,
      figures: { objects, imagesPerSecond: median(grown), newBucketImagesPerSecond: median(fresh) },
    },
  ];
}

/**
 * A first run over BENCH_FIRSTRUN_OBJECTS tiny objects (default 20 000) with a model that
 * costs nothing, batch 64: what is left is the pipeline's own cost per batch, which must not
 * grow with the bucket (each batch finds its objects among all of them).
 */
async function firstrun(): Promise<Row[]> {
  const objects = Number(process.env.BENCH_FIRSTRUN_OBJECTS ?? 20_000);
  const png = await sharp({ create: { width: 2, height: 2, channels: 3, background: { r: 20, g: 200, b: 20 } } })
    .png()
    .toBuffer();
  const dir = tinyObjects(objects, png);
  const models = await writeColorModel(join(ROOT, 'colour-model'));
  const cluster = await BenchCluster.start();
  await cluster.startWorkers(1);
  const perBatch: number[] = [];
  const walls: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const config = writeConfig(`firstrun-${objects}-${r}`, {
      dataset: 'bench',
      sourceUris: [`${dir}/*.png`],
      model: { name: 'colors', source: models.model, labels: models.labels },
      batch: { size: BATCH, concurrency: 2 },
    });
    const { summary, wallMs } = await cluster.run(config);
    if (summary.predicted !== objects) throw new Error(`firstrun: predicted ${summary.predicted} of ${objects}`);
    perBatch.push(summary.inferDurationMs / summary.batches);
    walls.push(wallMs);
  }
  await cluster.stop();
  return [
    {
      group: 'firstrun',
      benchmark: `first run: ${objects} tiny PNGs, trivial model, batch ${BATCH}, concurrency 2`,
      result: `${median(perBatch).toFixed(1)} ms per batch (${perBatch.map((x) => x.toFixed(1)).join(', ')}); ${(median(walls) / 1000).toFixed(1)} s wall`,
      figures: { objects, msPerBatch: median(perBatch), wallSeconds: median(walls) / 1000 },
    },
  ];
}

/** Provisions through the backend, then writes the rows a finished run would have written; returns the listing's seconds. */
async function seedPredictions(config: ReturnType<typeof writeConfig>): Promise<number> {
  const backend = createBackend(config);
  await backend.ensureDataset();
  const connection = await backend.ensureConnection();
  await backend.ensureBucket();
  await backend.grantObjectViewer(connection.serviceAccount);
  const artifact = await backend.uploadModel();
  const listing = performance.now();
  await backend.ensureObjectTable();
  const listingSeconds = (performance.now() - listing) / 1000;
  await backend.ensureModel(artifact);
  await backend.ensureResultTables(await backend.describeModel(artifact));
  await new Warehouse(config.local.warehouse).use((db) =>
    db.run(
      `INSERT INTO bench.predictions SELECT uri, generation, $1, 'red', 1.0, [{'label': 'red', 'index': 0, 'score': 1.0}], NULL, 'seed', now() FROM bench.images`,
      [artifact.version],
    ),
  );
  return listingSeconds;
}

/** A model that costs nothing: what is left is the pipeline's own cost per batch and per image. */
async function overhead(): Promise<Row[]> {
  const dir = join(ROOT, 'tiny');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'trivial.onnx'), colorClassifierOnnx(1));
  writeFileSync(join(dir, 'trivial.labels.txt'), colorLabelsFile());
  const images = 480;
  const png = await sharp({ create: { width: 1, height: 1, channels: 3, background: { r: 20, g: 200, b: 20 } } })
    .png()
    .toBuffer();
  for (let i = 0; i < images; i++) writeFileSync(join(dir, `t${String(i).padStart(4, '0')}.png`), png);
  const cluster = await BenchCluster.start();
  await cluster.startWorkers(1);
  const rows: Row[] = [];
  for (const size of [1, 16, 480]) {
    const perBatch: number[] = [];
    const perImage: number[] = [];
    const fixed: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const config = writeConfig(`overhead-${size}-${r}`, {
        dataset: 'bench',
        sourceUris: [`${dir}/*.png`],
        model: { name: 'trivial', source: join(dir, 'trivial.onnx'), labels: join(dir, 'trivial.labels.txt') },
        batch: { size, concurrency: 2 },
      });
      const { summary } = await cluster.run(config);
      perBatch.push(summary.inferDurationMs / summary.batches);
      perImage.push(summary.inferDurationMs / images);
      fixed.push(summary.durationMs - summary.inferDurationMs);
    }
    rows.push({
      group: 'overhead',
      benchmark: `overhead: trivial model, ${images} 1x1 PNGs, batch ${size}, concurrency 2`,
      result: `${median(perBatch).toFixed(1)} ms per batch, ${median(perImage).toFixed(2)} ms per image; preflight+provision+plan ${median(fixed).toFixed(0)} ms`,
      figures: { batchSize: size, msPerBatch: median(perBatch), msPerImage: median(perImage), fixedMs: median(fixed) },
    });
  }
  await cluster.stop();
  return rows;
}

/** One and two worker processes on one task queue (batches are shared between them). */
async function scaleout(): Promise<Row[]> {
  const size = Number(process.env.BENCH_SCALEOUT_IMAGES ?? 400);
  const dir = await photos(size);
  const rows: Row[] = [];
  for (const workers of [1, 2]) {
    const cluster = await BenchCluster.start();
    await cluster.startWorkers(workers);
    const rates: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const config = writeConfig(`scaleout-${workers}-${r}`, {
        dataset: 'bench',
        sourceUris: firstPhotos(dir, size),
        model: { name: 'resnet', source: resnetModel() },
        batch: { size: BATCH, concurrency: 2 * workers },
      });
      const { summary } = await cluster.run(config);
      rates.push(summary.predicted / (summary.inferDurationMs / 1000));
    }
    await cluster.stop();
    rows.push({
      group: 'scaleout',
      benchmark: `scale-out: ${size} JPEGs, ${workers} worker process${workers > 1 ? 'es' : ''} on one task queue, concurrency ${2 * workers}`,
      result: `${median(rates).toFixed(1)} img/s`,
      figures: { workers, imagesPerSecond: median(rates) },
    });
  }
  return rows;
}

async function main(): Promise<void> {
  const child = process.argv.indexOf('--child');
  if (child >= 0) {
    const name = process.argv[child + 1]!;
    try {
      process.stdout.write(`${JSON.stringify(await BENCHMARKS[name]!())}\n`);
    } finally {
      await BenchCluster.stopAll();
    }
    return;
  }
  const selected = (process.env.BENCH ?? Object.keys(BENCHMARKS).join(',')).split(',');
  const rows: Row[] = [];
  for (const name of selected) {
    if (!BENCHMARKS[name]) throw new Error(`unknown benchmark ${name}; choose from ${Object.keys(BENCHMARKS).join(', ')}`);
    console.error(`bench: ${name} ...`);
    const run = spawnSync('npx', ['tsx', __filename, '--child', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], env: process.env });
    if (run.status !== 0) throw new Error(`benchmark ${name} failed (exit ${run.status})`);
    const produced = JSON.parse(run.stdout.trim().split('\n').pop()!) as Row[];
    for (const row of produced) console.error(`  ${row.benchmark}: ${row.result}`);
    rows.push(...produced);
  }
  const out = resolve(__dirname, 'results');
  mkdirSync(out, { recursive: true });
  const file = join(out, 'latest.json');
  const previous = previousRows(existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Partial<Results>) : undefined);
  const date = new Date().toISOString();
  const measured = { date: date.slice(0, 10), runs: RUNS };
  const results: Results = {
    date,
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
    runs: RUNS,
    rows: mergeRows(
      previous,
      rows.map((row) => ({ ...row, measured })),
      Object.keys(BENCHMARKS),
    ),
  };
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  const table = markdownResults(results);
  writeFileSync(join(out, 'latest.md'), table);
  console.log(table);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
