/** Big tables and buckets: runs with nothing new, growing results tables, big buckets, first runs over many objects. */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { createBackend } from '../../src/backends';
import type { RunSpec } from '../../src/config';
import { Warehouse } from '../../src/backends/local/warehouse';
import { writeColorModel } from '../../src/demo';
import type { Row } from '../results';
import { BATCH, BenchCluster, firstPhotos, median, ownPeakRssMiB, peakRssMiB, photos, resnetModel, ROOT, RUNS, writeConfig } from '../support';

/** `size` tiny PNG files (made once): objects that cost nothing to list and are never decoded here. */
function tinyObjects(size: number, png: Buffer): string {
  const dir = join(ROOT, `objects-${size}`);
  mkdirSync(dir, { recursive: true });
  if (readdirSync(dir).length !== size) for (let i = 0; i < size; i++) writeFileSync(join(dir, `o${String(i).padStart(6, '0')}.png`), png);
  return dir;
}

/** A run with nothing new: objects made as tiny files and marked predicted in the table (no inference to set up). */
export async function incremental(): Promise<Row[]> {
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
export async function growing(): Promise<Row[]> {
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
export async function bucket(): Promise<Row[]> {
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
export async function firstrun(): Promise<Row[]> {
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
