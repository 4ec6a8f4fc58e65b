/** The whole pipeline over photos, its CPU profile, and the fixed costs of a small run. */
import { cpus } from 'node:os';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Row } from '../results';
import { bareLoop, peerRate } from './inference';
import {
  BATCH,
  BenchCluster,
  cpuMs,
  firstPhotos,
  readTurnProfile,
  type TurnProfile,
  median,
  peakRssMiB,
  photos,
  resnetModel,
  ROOT,
  RUNS,
  writeConfig,
} from '../support';

/**
 * The whole pipeline over N photos, each run next to a bare-loop measurement taken just
 * before it (this machine's speed drifts by several per cent over minutes): infer-stage
 * rate, its ratio to the bare loop (medians over runs), and the worker's peak memory.
 */
export async function pipeline(): Promise<Row[]> {
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
export async function small(): Promise<Row[]> {
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
