/**
 * `objinfer watch`'s latency: photo-sized JPEGs written into a watched folder at a steady rate
 * for minutes, a ResNet-50-shaped model, one worker process; from each file's close to its
 * prediction row's commit (`predicted_at`), p50 and p95, and whether any file was lost or
 * predicted twice.
 */
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startWatch } from '../../src/client';
import { Warehouse } from '../../src/backends/local/warehouse';
import { watchProgressQuery } from '../../src/workflows/contract';
import type { Row } from '../results';
import { BenchCluster, photos, resnetModel, ROOT, writeConfig } from '../support';

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export async function watch(): Promise<Row[]> {
  const rate = Number(process.env.BENCH_WATCH_RATE ?? 10);
  const seconds = Number(process.env.BENCH_WATCH_SECONDS ?? 180);
  const count = Math.round(rate * seconds);
  const source = await photos(Math.min(count, 2000));
  const sources = readdirSync(source).sort();
  const folder = join(ROOT, 'run', `watched-${process.pid}`);
  rmSync(folder, { recursive: true, force: true });
  mkdirSync(folder, { recursive: true });
  const config = writeConfig('watch', {
    dataset: 'bench',
    sourceUris: [`${folder}/*.jpg`],
    model: { name: 'resnet', source: resnetModel() },
    watch: { debounce: '300ms', maxWait: '1s', maxBatch: 500, reconcileEvery: '10m' },
  });
  const cluster = await BenchCluster.start();
  try {
    await cluster.startWorkers(1);
    const { workflowId } = await startWatch(cluster.client, config);
    const handle = cluster.client.workflow.getHandle(workflowId);
    while ((await handle.query(watchProgressQuery).catch(() => undefined))?.microBatches !== 1) await sleep(200);

    const closedAt = new Map<string, number>();
    const started = Date.now();
    for (let i = 0; i < count; i++) {
      const due = started + (i * 1000) / rate;
      if (due > Date.now()) await sleep(due - Date.now());
      const name = `w${String(i).padStart(6, '0')}.jpg`;
      writeFileSync(join(folder, name), readFileSync(join(source, sources[i % sources.length]!)));
      closedAt.set(`file://${join(folder, name)}`, Date.now());
    }
    const deadline = Date.now() + 120_000;
    let rows: { uri: string; at: number; n: number }[] = [];
    while (Date.now() < deadline) {
      rows = await new Warehouse(config.local.warehouse, { readOnly: true })
        .use((db) =>
          db.all<{ uri: string; at: number; n: number }>(
            `SELECT uri, CAST(epoch_ms(max(predicted_at)) AS DOUBLE) AS at, CAST(count(*) AS INTEGER) AS n FROM bench.predictions GROUP BY uri`,
          ),
        )
        .catch(() => rows);
      if (rows.length >= count) break;
      await sleep(500);
    }
    const progress = await handle.query(watchProgressQuery);
    const errors = await new Warehouse(config.local.warehouse, { readOnly: true }).use((db) =>
      db.one<{ n: number }>(`SELECT CAST(count(*) AS INTEGER) AS n FROM bench.predictions_errors`),
    );
    await handle.cancel();
    const latencies = rows
      .filter((r) => closedAt.has(r.uri))
      .map((r) => r.at - closedAt.get(r.uri)!)
      .sort((a, b) => a - b);
    const lost = count - latencies.length;
    const twice = rows.filter((r) => r.n > 1).length;
    const p50 = percentile(latencies, 50);
    const p95 = percentile(latencies, 95);
    return [
      {
        group: 'watch',
        benchmark: `watch: ${rate} JPEGs 640x480 a second for ${seconds} s into a watched folder, ResNet-50-shaped model, one worker process`,
        result:
          `from a file's close to its committed row: **p50 ${(p50 / 1000).toFixed(2)} s, p95 ${(p95 / 1000).toFixed(2)} s** (max ${(latencies.at(-1)! / 1000).toFixed(2)} s); ` +
          `${lost} of ${count} files without a row, ${twice} with more than one, ${errors?.n ?? 0} error rows; ${progress.microBatches} micro-batches`,
        figures: {
          rate,
          seconds,
          files: count,
          p50Seconds: p50 / 1000,
          p95Seconds: p95 / 1000,
          maxSeconds: latencies.at(-1)! / 1000,
          lost,
          twice,
          microBatches: progress.microBatches,
        },
      },
    ];
  } finally {
    await cluster.stop();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
