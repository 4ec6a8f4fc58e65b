/** The pipeline with a trivial model (its own cost per batch and image), and scaling out to two workers. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { colorClassifierOnnx, colorLabelsFile } from '../../src/models/colorClassifier';
import type { Row } from '../results';
import { BATCH, BenchCluster, firstPhotos, median, photos, resnetModel, ROOT, RUNS, writeConfig } from '../support';

/** A model that costs nothing: what is left is the pipeline's own cost per batch and per image. */
export async function overhead(): Promise<Row[]> {
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
export async function scaleout(): Promise<Row[]> {
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
