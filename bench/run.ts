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
 *  cli          the command line's fixed cost: --version, --help, results, status, against node -e 0
 *  small        fixed costs: a 10-image run with the dev server and the worker already up
 *  incremental  a run with nothing new over 10 000 and 100 000 already-predicted objects
 *  growing      200 new JPEGs into a results table of 100 000 rows, against a new table
 *  bucket       200 new JPEGs in a bucket of 100 000 objects already predicted, against a new bucket
 *  firstrun     a first run over 20 000 tiny objects with a trivial model: the pipeline's cost per batch in a big bucket
 *  overhead     the pipeline with a trivial model: cost per batch and per image
 *  scaleout     the pipeline with one and with two worker processes on one task queue
 *  watch        objinfer watch: files written at 10 a second for minutes; from each file's close to its row, p50 and p95
 *  endtoend     the whole `objinfer run` (own worker) over 200 JPEGs against the Python peer's whole process
 */
import { spawnSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { cli } from './measures/cli';
import { endtoend } from './measures/endtoend';
import { evaluation } from './measures/evaluation';
import { ceiling, images, ranking, session } from './measures/inference';
import { overhead, scaleout } from './measures/overhead';
import { pipeline, small } from './measures/pipeline';
import { bucket, firstrun, growing, incremental } from './measures/tables';
import { watch } from './measures/watch';
import { markdownResults, mergeRows, previousRows, type Results, type Row } from './results';
import { BenchCluster, RUNS } from './support';

const BENCHMARKS: Record<string, () => Promise<Row[]>> = {
  ceiling,
  session,
  images,
  ranking,
  pipeline,
  cli,
  small,
  incremental,
  growing,
  bucket,
  firstrun,
  overhead,
  scaleout,
  evaluation,
  watch,
  endtoend,
};

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
