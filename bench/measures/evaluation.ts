/**
 * `objinfer evaluate` and `compare` over a million images in the local warehouse: wall time
 * and the CLI process's peak memory (GNU time), 1,000 classes, top-5 stored, two prediction
 * versions. The rows are made in SQL with the project's DDL (no inference: this measures the
 * evaluation query and what reaches Node, which is one row per group).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { DuckDBInstance } from '@duckdb/node-api';
import { objectTableDdl, resultsDdl } from '../../src/backends/local/schema';
import type { Row } from '../results';
import { CLI, median, RUNS, ROOT, writeConfig } from '../support';

const IMAGES = Number(process.env.BENCH_EVALUATE_IMAGES ?? 1_000_000);
const CLASSES = 1000;

async function fill(path: string): Promise<void> {
  const instance = await DuckDBInstance.create(path);
  const db = await instance.connect();
  await db.run('CREATE SCHEMA IF NOT EXISTS bench');
  for (const ddl of [...objectTableDdl('bench', 'images'), ...resultsDdl('bench', 'predictions')]) await db.run(ddl);
  await db.run(
    `INSERT INTO bench.images (uri, generation, size, updated)
     SELECT 'file:///data/flowers/c' || (i % ${CLASSES}) || '/img-' || i || '.jpg', 1, 100, now() FROM range(${IMAGES}) t(i)`,
  );
  // Version v1 is right for 60% of images, v2 for 70%; the truth is in the top 5 for 90%.
  for (const [version, right] of [
    ['v1', 6],
    ['v2', 7],
  ] as const) {
    await db.run(
      `INSERT INTO bench.predictions (uri, generation, model_version, label, score, top_k, run_id, predicted_at)
       SELECT uri, 1, '${version}', 'c' || top[1], 0.5,
         [{'label': 'c' || c, 'index': c, 'score': 0.5 - 0.1 * n} FOR c, n IN top], 'bench', now()
       FROM (
         SELECT 'file:///data/flowers/c' || (i % ${CLASSES}) || '/img-' || i || '.jpg' AS uri,
           CASE WHEN hash(i, '${version}') % 10 < ${right} THEN [i % ${CLASSES}, (i + 1) % ${CLASSES}, (i + 2) % ${CLASSES}, (i + 3) % ${CLASSES}, (i + 4) % ${CLASSES}]
                WHEN hash(i, '${version}') % 10 < 9 THEN [(i + 1) % ${CLASSES}, i % ${CLASSES}, (i + 2) % ${CLASSES}, (i + 3) % ${CLASSES}, (i + 4) % ${CLASSES}]
                ELSE [(i + 5) % ${CLASSES}, (i + 1) % ${CLASSES}, (i + 2) % ${CLASSES}, (i + 3) % ${CLASSES}, (i + 4) % ${CLASSES}] END AS top
         FROM range(${IMAGES}) t(i))`,
    );
  }
  db.closeSync();
  instance.closeSync();
}

/** Wall seconds and peak RSS (MiB) of one CLI command, by GNU time. */
function timed(args: string[]): { wallMs: number; peakMiB: number } {
  const run = spawnSync('/usr/bin/time', ['-f', '%e %M', CLI, ...args], { encoding: 'utf8', maxBuffer: 256 << 20 });
  if (run.status !== 0) throw new Error(`objinfer ${args.join(' ')} exited ${run.status}: ${run.stderr.trim()}`);
  const [wall, kb] = run.stderr.trim().split('\n').pop()!.split(' ').map(Number);
  return { wallMs: wall! * 1000, peakMiB: kb! / 1024 };
}

export async function evaluation(): Promise<Row[]> {
  mkdirSync(`${ROOT}/none`, { recursive: true }); // the config's image folder: the object table is written here, not listed
  const spec = writeConfig('evaluate', {
    dataset: 'bench',
    sourceUris: [`${ROOT}/none/*`],
    model: { name: 'none', source: CLI },
    results: { table: 'predictions', topK: 5 },
    evaluation: { groundTruth: { fromPath: 'flowers/{label}/*' } },
  });
  await fill(spec.local.warehouse);
  const configFile = `${ROOT}/configs/evaluate.yaml`;
  const rows: Row[] = [];
  for (const [name, args] of [
    ['evaluate', ['evaluate', '--config', configFile, '--prediction-version', 'v2', '-o', 'json']],
    ['compare', ['compare', 'v1', 'v2', '--config', configFile, '-o', 'json']],
  ] as const) {
    const runs = Array.from({ length: RUNS }, () => timed([...args]));
    const wallMs = median(runs.map((r) => r.wallMs));
    const peakMiB = Math.max(...runs.map((r) => r.peakMiB));
    rows.push({
      group: 'evaluation',
      benchmark: `${name}: ${IMAGES.toLocaleString('en')} images, ${CLASSES} classes, top-5 (local)`,
      result: `${(wallMs / 1000).toFixed(2)} s, peak ${peakMiB.toFixed(0)} MiB`,
      figures: { wallMs, peakMiB, images: IMAGES },
    });
  }
  return rows;
}
