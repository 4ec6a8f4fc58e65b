/**
 * Chaos: runs the pipeline over generated images while killing the worker process with
 * SIGKILL at random moments (and the Temporal dev server once), restarting each, then
 * checks that nothing was lost or duplicated and that the summary matches the tables.
 *
 *   make chaos                         # 50+ kills, the dev server killed once
 *   CHAOS_KILLS=5 CHAOS_IMAGES=60 make chaos
 *
 * `test/chaos.test.ts` runs a short version in the normal suite. Local backend only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import { stringify } from 'yaml';
import { startPipeline } from '../../src/client';
import { loadConfig, type RunSpec } from '../../src/config';
import sharp from 'sharp';
import { writeColorModel } from '../../src/demo';
import { CORRUPT_JPEG, writeColorImage } from '../../src/demo/images';
import { Warehouse } from '../../src/backends/local/warehouse';
import { COLOR_LABELS } from '../../src/models/colorClassifier';
import { seededRandom } from '../../src/models/random';
import { findTemporalCli, startDevServer, type DevServer } from '../../src/temporal/devServer';
import { pngBomb } from '../support/hostile';
import { freePorts } from '../support/ports';
import { SearchAttributes, type PipelineSummary } from '../../src/workflows/contract';

const ROOT = resolve(__dirname, '..', '..');
const CLI = join(ROOT, 'bin', 'objinfer');

export interface ChaosOptions {
  /** Images per round (every 50th is corrupt and must land in the errors table). */
  images: number;
  /** Worker kills to reach; rounds go on until there have been this many. */
  kills: number;
  /** Kill and restart the dev server once, in the first round. */
  killServer: boolean;
  /** Give up (and fail) after this long. */
  timeLimitMs: number;
  seed: number;
  /**
   * Decoder memory cap for the worker (OBJINFER_DECODER_MEMORY_MB). With it, each round also
   * holds two image bombs (huge headers, tiny files) and one real image that needs more than
   * the cap: all three must land in the errors table while the worker is being killed.
   */
  decoderMemoryMb?: number;
  log?: (line: string) => void;
}

export interface RoundReport {
  round: number;
  workflowId: string;
  kills: number;
  summary: PipelineSummary;
  /** Problems found by the checks; empty when the round is clean. */
  problems: string[];
  /** What the tables hold, counted independently of the summary. */
  tally: Tally;
}

export interface Tally {
  rowsLost: number;
  rowsDuplicated: number;
  /** Bombs refused from their header and images a decoder could not hold under its cap. */
  poisonIsolated: number;
  /** Of those, decodes that ran out of the decoder's memory. */
  decoderOoms: number;
}

export interface ChaosReport {
  kills: number;
  killsByStage: Record<string, number>;
  serverKills: number;
  rounds: RoundReport[];
  wallMs: number;
}

interface Cluster {
  dir: string;
  server: DevServer;
  serverOptions: Parameters<typeof startDevServer>[0];
  client: Client;
  connection: Connection;
  worker?: ChildProcess;
  /** The run's history length when this worker started (-1: not read yet). */
  historyAtStart: number;
  runAtStart?: string;
  workerLog: string;
  decoderMemoryMb?: number;
}

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const log = options.log ?? (() => undefined);
  const random = seededRandom(options.seed);
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'objinfer-chaos-'));
  const files = await writeImages(dir, options.images, options.decoderMemoryMb !== undefined);
  const cliPath = findTemporalCli();
  if (!cliPath) throw new Error('no Temporal CLI: run `make tools`');
  const serverOptions = {
    cliPath,
    ...(([port, uiPort]) => ({ port: port!, uiPort: uiPort! }))(await freePorts(2)),
    dbFile: join(dir, 'temporal.db'),
    logFile: join(dir, 'temporal.log'),
  };
  const server = await startDevServer(serverOptions);
  const connection = await Connection.connect({ address: server.address });
  const cluster: Cluster = {
    dir,
    server,
    serverOptions,
    client: new Client({ connection }),
    connection,
    historyAtStart: -1,
    workerLog: join(dir, 'worker.log'),
    decoderMemoryMb: options.decoderMemoryMb,
  };
  const report: ChaosReport = { kills: 0, killsByStage: {}, serverKills: 0, rounds: [], wallMs: 0 };
  log(`chaos: ${options.images} images per round, target ${options.kills} worker kills, seed ${options.seed}, in ${dir}`);
  try {
    startWorker(cluster);
    for (let round = 0; report.kills < options.kills || round === 0; round++) {
      if (Date.now() - started > options.timeLimitMs) throw new Error(`chaos: time limit reached after ${report.kills} kills`);
      const config = roundConfig(dir, round);
      const { workflowId } = await startPipeline(cluster.client, config, { searchAttributes: true });
      let kills = 0;
      let serverKilled = false;
      for (;;) {
        const status = await statusOf(cluster, workflowId);
        if (status?.name === 'COMPLETED') break;
        if (status && status.name !== 'RUNNING') throw new Error(`chaos: ${workflowId} ended ${status.name}`);
        if (Date.now() - started > options.timeLimitMs) throw new Error(`chaos: time limit reached in round ${round}`);
        if (cluster.worker?.exitCode !== null) startWorker(cluster); // it died on its own (e.g. the server went away)
        // Kill only once this worker has moved the run on (its history grew), then at a random
        // moment within the next 1.5 s: every kill interrupts work, and the run still advances.
        if (status && status.runId !== cluster.runAtStart) [cluster.runAtStart, cluster.historyAtStart] = [status.runId, -1]; // continued as new
        if (status && (cluster.historyAtStart < 0 || status.historyLength < cluster.historyAtStart + 2)) {
          if (cluster.historyAtStart < 0) cluster.historyAtStart = status.historyLength;
          await sleep(100);
          continue;
        }
        if (status) await sleep(random() * 1500);
        if (options.killServer && !serverKilled && round === 0 && kills === 1) {
          serverKilled = true;
          report.serverKills++;
          await restartServer(cluster, log);
          cluster.historyAtStart = -1;
          continue;
        }
        const stage = (await statusOf(cluster, workflowId))?.stage ?? status?.stage ?? 'unknown';
        await killWorker(cluster);
        kills++;
        report.kills++;
        report.killsByStage[stage] = (report.killsByStage[stage] ?? 0) + 1;
        log(`  round ${round}: kill ${report.kills} during ${stage}`);
        startWorker(cluster);
      }
      const summary = (await cluster.client.workflow.getHandle(workflowId).result()) as PipelineSummary;
      const { problems, tally } = await checkRound(config, files, summary);
      report.rounds.push({ round, workflowId, kills, summary, problems, tally });
      log(
        `  round ${round}: completed after ${kills} kills; ${summary.predicted} predicted, ${summary.failed} failed; ${problems.length ? problems.join('; ') : 'checks pass'}`,
      );
    }
  } finally {
    if (cluster.worker?.exitCode === null) await killWorker(cluster);
    await cluster.connection.close().catch(() => undefined);
    await cluster.server.stop();
    // Its images, warehouse and dev-server database stay only when a round found a problem, to look at.
    if (report.rounds.every((round) => round.problems.length === 0)) rmSync(dir, { recursive: true, force: true });
    else log(`  kept ${dir} for inspection (a round found problems)`);
  }
  report.wallMs = Date.now() - started;
  return report;
}

async function writeImages(dir: string, count: number, hostile: boolean): Promise<{ valid: number; corrupt: number; poison: number }> {
  await writeColorModel(join(dir, 'models'));
  mkdirSync(join(dir, 'images'));
  let poison = 0;
  if (hostile) {
    for (const name of ['bomb-1.png', 'bomb-2.png']) writeFileSync(join(dir, 'images', name), pngBomb(40_000, 40_000));
    // 81 megapixels: under the pixel limit, 243 MB of RGB; more than a small decoder cap holds.
    await sharp({ create: { width: 9000, height: 9000, channels: 3, background: { r: 200, g: 0, b: 0 } } })
      .png()
      .toFile(join(dir, 'images', 'too-big-for-the-cap.png'));
    poison = 3;
  }
  let corrupt = 0;
  for (let i = 0; i < count; i++) {
    if (i % 50 === 49) {
      writeFileSync(join(dir, 'images', `corrupt-${i}.jpg`), CORRUPT_JPEG);
      corrupt++;
    } else {
      await writeColorImage(join(dir, 'images'), COLOR_LABELS[i % COLOR_LABELS.length]!, i);
    }
  }
  return { valid: count - corrupt, corrupt: corrupt + poison, poison };
}

/** Each round is a new dataset, so kills also land in provisioning and planning. */
function roundConfig(dir: string, round: number): RunSpec {
  const file = join(dir, `round-${round}.yaml`);
  writeFileSync(
    file,
    stringify({
      name: `chaos-${round}`,
      dataset: `chaos_${round}`,
      bucket: 'chaos-models',
      objectTable: 'images',
      sourceUris: ['images/*'],
      model: { name: 'colors', source: 'models/color-classifier.onnx', labels: 'models/color-classifier.labels.txt' },
      batch: { size: 8, concurrency: 2, heartbeatTimeout: '2s' },
      local: { warehouse: 'warehouse.duckdb', storage: 'storage' },
      temporal: { taskQueue: 'chaos' },
    }),
  );
  return loadConfig(file);
}

function startWorker(cluster: Cluster): void {
  const env = {
    ...process.env,
    TEMPORAL_ADDRESS: cluster.server.address,
    OBJINFER_HOME: join(cluster.dir, 'state'),
    ...(cluster.decoderMemoryMb !== undefined ? { OBJINFER_DECODER_MEMORY_MB: String(cluster.decoderMemoryMb) } : {}),
  };
  const out = openSync(cluster.workerLog, 'a');
  cluster.worker = spawn(CLI, ['worker', '--task-queue', 'chaos'], { env, stdio: ['ignore', out, out] });
  closeSync(out);
  cluster.historyAtStart = -1;
}

async function killWorker(cluster: Cluster): Promise<void> {
  const worker = cluster.worker;
  if (!worker || worker.exitCode !== null) return;
  const exited = new Promise((done) => worker.once('exit', done));
  worker.kill('SIGKILL');
  await exited;
}

/** SIGKILL, not a clean stop: the server comes back from its SQLite file on the same port. */
async function restartServer(cluster: Cluster, log: (line: string) => void): Promise<void> {
  process.kill(cluster.server.pid, 'SIGKILL');
  await sleep(300);
  log('  dev server killed; restarting it from its SQLite file');
  cluster.server = await startDevServer(cluster.serverOptions);
}

async function statusOf(cluster: Cluster, workflowId: string): Promise<{ name: string; stage?: string; historyLength: number; runId: string } | undefined> {
  try {
    const description = await cluster.client.workflow.getHandle(workflowId).describe();
    return {
      name: description.status.name,
      stage: description.typedSearchAttributes.get(SearchAttributes.stage),
      historyLength: description.historyLength,
      runId: description.runId,
    };
  } catch {
    return undefined; // the server is restarting
  }
}

/** Exactly one row per object in the results or errors table, and a summary that agrees. */
async function checkRound(
  config: RunSpec,
  files: { valid: number; corrupt: number; poison: number },
  summary: PipelineSummary,
): Promise<{ problems: string[]; tally: Tally }> {
  const problems: string[] = [];
  const warehouse = new Warehouse(config.local.warehouse, { readOnly: true });
  const [counts] = await warehouse.use((db) =>
    db.all<{
      predicted: bigint;
      distinct_predicted: bigint;
      failed: bigint;
      distinct_failed: bigint;
      both: bigint;
      objects: bigint;
      accounted: bigint;
      poison: bigint;
      ooms: bigint;
    }>(`
      WITH r AS (SELECT uri, generation FROM "${config.dataset}".predictions WHERE model_version = '${summary.modelVersion}'),
           e AS (SELECT uri, generation FROM "${config.dataset}".predictions_errors WHERE model_version = '${summary.modelVersion}')
      SELECT (SELECT count(*) FROM r) AS predicted, (SELECT count(DISTINCT (uri, generation)) FROM r) AS distinct_predicted,
             (SELECT count(*) FROM e) AS failed, (SELECT count(DISTINCT (uri, generation)) FROM e) AS distinct_failed,
             (SELECT count(*) FROM r JOIN e USING (uri, generation)) AS both,
             (SELECT count(*) FROM "${config.dataset}".images) AS objects,
             (SELECT count(*) FROM "${config.dataset}".images o WHERE EXISTS (SELECT 1 FROM r WHERE r.uri = o.uri) OR EXISTS (SELECT 1 FROM e WHERE e.uri = o.uri)) AS accounted,
             (SELECT count(*) FROM "${config.dataset}".predictions_errors WHERE model_version = '${summary.modelVersion}'
                AND (error LIKE '%image bomb%' OR error LIKE '%needs more memory%' OR error LIKE '%decoder process%')) AS poison,
             (SELECT count(*) FROM "${config.dataset}".predictions_errors WHERE model_version = '${summary.modelVersion}'
                AND (error LIKE '%needs more memory%' OR error LIKE '%decoder process%')) AS ooms`),
  );
  const n = (v: bigint | undefined) => Number(v ?? -1);
  const expect = (what: string, actual: number, wanted: number) => {
    if (actual !== wanted) problems.push(`${what}: ${actual}, expected ${wanted}`);
  };
  expect('objects in the object table', n(counts?.objects), files.valid + files.corrupt);
  expect('result rows', n(counts?.predicted), files.valid);
  expect('duplicate result rows', n(counts?.predicted) - n(counts?.distinct_predicted), 0);
  expect('error rows', n(counts?.failed), files.corrupt);
  expect('duplicate error rows', n(counts?.failed) - n(counts?.distinct_failed), 0);
  expect('objects with both a result and an error', n(counts?.both), 0);
  expect('objects with neither a result nor an error', n(counts?.objects) - n(counts?.accounted), 0);
  expect('summary.predicted vs the results table', summary.predicted, n(counts?.predicted));
  expect('summary.failed vs the errors table', summary.failed, n(counts?.failed));
  expect('summary.objectsSeen', summary.objectsSeen, files.valid + files.corrupt);
  expect('poison objects isolated in the errors table', n(counts?.poison), files.poison);
  const tally: Tally = {
    rowsLost: n(counts?.objects) - n(counts?.accounted),
    rowsDuplicated: n(counts?.predicted) - n(counts?.distinct_predicted) + n(counts?.failed) - n(counts?.distinct_failed) + n(counts?.both),
    poisonIsolated: n(counts?.poison),
    decoderOoms: n(counts?.ooms),
  };
  return { problems, tally };
}

if (require.main === module) {
  const options: ChaosOptions = {
    images: Number(process.env.CHAOS_IMAGES ?? 300),
    kills: Number(process.env.CHAOS_KILLS ?? 50),
    killServer: process.env.CHAOS_KILL_SERVER !== '0',
    timeLimitMs: Number(process.env.CHAOS_TIME_LIMIT_S ?? 1200) * 1000,
    seed: Number(process.env.CHAOS_SEED ?? Date.now() % 100_000),
    decoderMemoryMb: Number(process.env.CHAOS_DECODER_MEMORY_MB ?? 200),
    log: (line) => console.log(line),
  };
  runChaos(options).then(
    (report) => {
      const problems = report.rounds.flatMap((r) => r.problems.map((p) => `round ${r.round}: ${p}`));
      console.log(
        JSON.stringify(
          {
            kills: report.kills,
            killsByStage: report.killsByStage,
            serverKills: report.serverKills,
            rounds: report.rounds.length,
            decoderMemoryMb: options.decoderMemoryMb,
            rowsLost: report.rounds.reduce((sum, r) => sum + r.tally.rowsLost, 0),
            rowsDuplicated: report.rounds.reduce((sum, r) => sum + r.tally.rowsDuplicated, 0),
            poisonIsolated: report.rounds.reduce((sum, r) => sum + r.tally.poisonIsolated, 0),
            decoderOoms: report.rounds.reduce((sum, r) => sum + r.tally.decoderOoms, 0),
            wallSeconds: Math.round(report.wallMs / 1000),
            problems,
          },
          null,
          2,
        ),
      );
      process.exit(problems.length ? 1 : 0);
    },
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
