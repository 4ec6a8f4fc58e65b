/**
 * Benchmarks (not part of the test gate): `make bench`.
 *  1. throughput: the whole pipeline vs a bare ONNX Runtime loop, same ResNet-50-shaped
 *     model and batch size (DESIGN §8: the pipeline should reach >= 90 %);
 *  2. incremental: a run over many objects, then a run with nothing new (no inference,
 *     seconds, whatever the table size), with the worker's peak memory.
 * Sizes: BENCH_IMAGES (default 96), BENCH_OBJECTS (default 10000).
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { stringify } from 'yaml';
import { createActivities } from '../src/activities';
import { backendFor } from '../src/backends';
import { startPipeline, waitForResult } from '../src/client';
import { loadConfig, type PipelineConfig } from '../src/config';
import { writeColorModel } from '../src/demo';
import { COLOR_LABELS, COLOR_PROTOTYPES } from '../src/models/colorClassifier';
import { resnetOnnx, RESNET_INPUT } from '../src/models/resnet';
import { writeWorkflowBundle } from '../src/temporal/bundleWorkflows';
import { findTemporalCli, freePort, startDevServer } from '../src/temporal/devServer';
import type { PipelineSummary } from '../src/workflows/contract';

const ROOT = resolve(__dirname, '..', '.objinfer', 'bench');
const BATCH = 16;

function writeConfig(dir: string, raw: Record<string, unknown>): PipelineConfig {
  const file = join(dir, 'objinfer.yaml');
  writeFileSync(file, stringify(raw));
  return loadConfig(file);
}

async function bareLoop(modelPath: string, images: number): Promise<number> {
  const session = await ort.InferenceSession.create(modelPath);
  const tensor = new ort.Tensor('float32', new Float32Array(BATCH * 224 * 224 * 3).fill(0.5), [BATCH, 224, 224, 3]);
  await session.run({ [RESNET_INPUT]: tensor }); // warm-up
  const runs = Math.ceil(images / BATCH);
  const start = performance.now();
  for (let i = 0; i < runs; i++) await session.run({ [RESNET_INPUT]: tensor });
  await session.release();
  return (runs * BATCH) / ((performance.now() - start) / 1000);
}

async function main(): Promise<void> {
  const images = Number(process.env.BENCH_IMAGES ?? 96);
  const objects = Number(process.env.BENCH_OBJECTS ?? 10_000);
  rmSync(join(ROOT, 'run'), { recursive: true, force: true });
  mkdirSync(join(ROOT, 'run'), { recursive: true });
  Runtime.install({ logger: new DefaultLogger('ERROR') });

  // Inputs: the model and photo-sized noisy JPEGs (decoding them costs what a photo costs).
  const throughputDir = join(ROOT, 'throughput');
  mkdirSync(join(throughputDir, 'images'), { recursive: true });
  const modelPath = join(ROOT, 'resnet50-shaped.onnx');
  if (!existsSync(modelPath)) writeFileSync(modelPath, resnetOnnx());
  for (let i = 0; i < images; i++) {
    const file = join(throughputDir, 'images', `photo-${String(i).padStart(5, '0')}.jpg`);
    if (existsSync(file)) continue;
    await sharp({ create: { width: 640, height: 480, channels: 3, background: { r: 90, g: 120, b: 150 }, noise: { type: 'gaussian', mean: 128, sigma: 40 } } })
      .jpeg({ quality: 90 })
      .toFile(file);
  }
  const incrementalDir = join(ROOT, 'incremental');
  mkdirSync(join(incrementalDir, 'images'), { recursive: true });
  const { model: colourModel, labels: colourLabels } = await writeColorModel(join(incrementalDir, 'models'));
  for (let i = 0; i < objects; i++) {
    const file = join(incrementalDir, 'images', `${String(i).padStart(6, '0')}.png`);
    if (existsSync(file)) continue;
    const [r, g, b] = COLOR_PROTOTYPES[COLOR_LABELS[i % COLOR_LABELS.length]!].map((c) => c * 215 + 20);
    await sharp({ create: { width: 24, height: 24, channels: 3, background: { r: r!, g: g!, b: b! } } }).png().toFile(file);
  }

  const cliPath = findTemporalCli();
  if (!cliPath) throw new Error('no Temporal CLI: run `make tools`');
  const bundle = join(ROOT, 'run', 'workflow-bundle.js');
  const [server] = await Promise.all([
    startDevServer({ cliPath, port: await freePort(), uiPort: await freePort(), dbFile: join(ROOT, 'run', 'temporal.db'), logFile: join(ROOT, 'run', 'temporal.log') }),
    writeWorkflowBundle(bundle),
  ]);
  const nativeConnection = await NativeConnection.connect({ address: server.address });
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection });
  const worker = await Worker.create({ connection: nativeConnection, taskQueue: 'bench', workflowBundle: { codePath: bundle }, activities: createActivities(backendFor) });
  let peakRss = 0;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 100);
  const run = async (config: PipelineConfig): Promise<{ summary: PipelineSummary; wallMs: number }> => {
    const start = performance.now();
    const { workflowId } = await startPipeline(client, config);
    const summary = await waitForResult(client, workflowId);
    return { summary, wallMs: performance.now() - start };
  };

  const rows: string[] = [];
  await worker.runUntil(async () => {
    const bare = await bareLoop(modelPath, images);
    const pipelineConfig = writeConfig(throughputDir, {
      name: 'bench-throughput', dataset: 'bench', bucket: 'bench-models', objectTable: 'photos', sourceUris: ['images/*.jpg'],
      model: { name: 'resnet', source: modelPath }, batch: { size: BATCH, concurrency: 2 },
      local: { warehouse: join(ROOT, 'run', 'throughput.duckdb'), storage: join(ROOT, 'run', 'storage') }, temporal: { taskQueue: 'bench' },
    });
    const { summary } = await run(pipelineConfig);
    const pipelineRate = summary.predicted / (summary.inferDurationMs / 1000);
    rows.push(`| throughput, ResNet-50-shaped, ${images} JPEG 640x480, batch ${BATCH} | bare ORT loop ${bare.toFixed(1)} img/s; pipeline infer stage ${pipelineRate.toFixed(1)} img/s = **${((100 * pipelineRate) / bare).toFixed(0)} %** |`);

    const incrementalConfig = writeConfig(incrementalDir, {
      name: 'bench-incremental', dataset: 'bench', bucket: 'bench-models', objectTable: 'many', sourceUris: ['images/*.png'],
      model: { name: 'colors', source: colourModel, labels: colourLabels }, batch: { size: 500, concurrency: 2 },
      local: { warehouse: join(ROOT, 'run', 'incremental.duckdb'), storage: join(ROOT, 'run', 'storage') }, temporal: { taskQueue: 'bench' },
    });
    const first = await run(incrementalConfig);
    const again = await run(incrementalConfig);
    const seen = first.summary.objectsSeen; // the folder may hold more than BENCH_OBJECTS from earlier runs
    rows.push(`| first run over ${seen} objects (colour model, batch 500) | ${(first.wallMs / 1000).toFixed(1)} s wall, ${first.summary.predicted} predicted, ${first.summary.batches} batches |`);
    rows.push(`| re-run with nothing new over ${seen} objects | ${(again.wallMs / 1000).toFixed(1)} s wall, ${again.summary.predicted} predicted, ${again.summary.batches} batches |`);
  });
  clearInterval(sampler);
  rows.push(`| worker process peak RSS (model sessions, DuckDB, Temporal) | ${(peakRss / 2 ** 20).toFixed(0)} MiB |`);
  console.log(['| benchmark | result |', '| --- | --- |', ...rows].join('\n'));
  await connection.close();
  await nativeConnection.close();
  await server.stop();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
