/** What the benchmarks share: inputs made once and cached, a dev server, worker processes, statistics. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import sharp from 'sharp';
import { stringify } from 'yaml';
import { startPipeline, waitForResult } from '../src/client';
import { loadConfig, type RunSpec } from '../src/config';
import { resnetOnnx } from './models/resnet';
import { findTemporalCli, startDevServer, type DevServer } from '../src/temporal/devServer';
import { freePorts } from '../test/support/ports';
import type { PipelineSummary } from '../src/workflows/contract';

export const ROOT = resolve(__dirname, '..', '.objinfer', 'bench');
export const CLI = resolve(__dirname, '..', 'bin', 'objinfer');
/** batch.size in the pipeline and images per run in the bare loop (the pipeline runs at most 64 at once). */
export const BATCH = Number(process.env.BENCH_BATCH ?? 64);
export const RUNS = Number(process.env.BENCH_RUNS ?? 3);

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** This process's peak resident memory so far, in MiB. */
export function ownPeakRssMiB(): number {
  return process.resourceUsage().maxRSS / 1024;
}

/** Another process's peak resident memory (the kernel's high-water mark), in MiB. */
export function peakRssMiB(pid: number): number {
  const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmHWM for process ${pid}`);
  return Number(match[1]) / 1024;
}

export function resnetModel(): string {
  const path = join(ROOT, 'resnet50-shaped.onnx');
  if (!existsSync(path)) {
    mkdirSync(ROOT, { recursive: true });
    writeFileSync(path, resnetOnnx());
  }
  return path;
}

/** `count` noisy photo-sized JPEGs (decoding them costs what a photo costs), made once. */
export async function photos(count: number, width = 640, height = 480, format: 'jpeg' | 'png' = 'jpeg'): Promise<string> {
  const dir = join(ROOT, `photos-${width}x${height}-${format}`);
  mkdirSync(dir, { recursive: true });
  const have = new Set(readdirSync(dir));
  for (let i = 0; i < count; i++) {
    const name = `p${String(i).padStart(5, '0')}.${format === 'jpeg' ? 'jpg' : 'png'}`;
    if (have.has(name)) continue;
    const image = sharp({ create: { width, height, channels: 3, background: { r: 90, g: 120, b: 150 }, noise: { type: 'gaussian', mean: 128, sigma: 40 } } });
    await (format === 'jpeg' ? image.jpeg({ quality: 90 }) : image.png()).toFile(join(dir, name));
  }
  return dir;
}

/** Source patterns for the first `count` photos (p00000 ... p01999 in hundreds). */
export function firstPhotos(dir: string, count: number): string[] {
  if (count % 100 !== 0) throw new Error('photo counts come in hundreds');
  return Array.from({ length: count / 100 }, (_, h) => `${dir}/p${String(h).padStart(3, '0')}*.jpg`);
}

/** A config whose warehouse starts empty: every benchmark run does its work from scratch. */
export function writeConfig(name: string, raw: Record<string, unknown>): RunSpec {
  rmSync(join(ROOT, 'run', `${name}.duckdb`), { force: true });
  rmSync(join(ROOT, 'run', `${name}.duckdb.wal`), { force: true });
  const dir = join(ROOT, 'configs');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    stringify({
      name,
      bucket: 'bench-models',
      objectTable: 'images',
      local: { warehouse: join(ROOT, 'run', `${name}.duckdb`), storage: join(ROOT, 'run', 'storage') },
      temporal: { taskQueue: 'bench' },
      ...raw,
    }),
  );
  return loadConfig(file);
}

/** A dev server of its own and worker processes on the `bench` task queue. */
export class BenchCluster {
  private static readonly running = new Set<BenchCluster>();
  private workers: ChildProcess[] = [];
  private constructor(
    readonly server: DevServer,
    private readonly connection: Connection,
    readonly client: Client,
  ) {}

  static async start(): Promise<BenchCluster> {
    const cliPath = findTemporalCli();
    if (!cliPath) throw new Error('no Temporal CLI: run `make tools`');
    const run = join(ROOT, 'run');
    mkdirSync(run, { recursive: true });
    const server = await startDevServer({
      cliPath,
      ...(([port, uiPort]) => ({ port: port!, uiPort: uiPort! }))(await freePorts(2)),
      dbFile: join(run, `temporal-${process.pid}.db`),
      logFile: join(run, 'temporal.log'),
    });
    const connection = await Connection.connect({ address: server.address });
    const cluster = new BenchCluster(server, connection, new Client({ connection }));
    BenchCluster.running.add(cluster);
    return cluster;
  }

  /** Stops whatever a failed benchmark left running. */
  static async stopAll(): Promise<void> {
    for (const cluster of [...BenchCluster.running]) await cluster.stop();
  }

  /** Starts worker processes (`objinfer worker`) and waits until they poll. */
  async startWorkers(count: number, env: Record<string, string> = {}): Promise<ChildProcess[]> {
    const started: ChildProcess[] = [];
    for (let i = 0; i < count; i++) {
      const child = spawn(CLI, ['worker', '--task-queue', 'bench'], {
        env: { ...process.env, TEMPORAL_ADDRESS: this.server.address, OBJINFER_HOME: join(ROOT, 'run', 'state'), ...env },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      await new Promise<void>((ready, failed) => {
        child.stderr!.on('data', (chunk: Buffer) => chunk.toString().includes('worker polling') && ready());
        child.once('exit', (code) => failed(new Error(`worker exited with ${code}`)));
      });
      started.push(child);
    }
    this.workers.push(...started);
    return started;
  }

  async stopWorkers(): Promise<void> {
    for (const worker of this.workers.splice(0)) {
      const exited = new Promise((done) => worker.once('exit', done));
      worker.kill('SIGKILL');
      await exited;
    }
  }

  async run(config: RunSpec): Promise<{ summary: PipelineSummary; wallMs: number }> {
    const start = performance.now();
    const { workflowId } = await startPipeline(this.client, config);
    const summary = await waitForResult(this.client, workflowId);
    return { summary, wallMs: performance.now() - start };
  }

  async stop(): Promise<void> {
    BenchCluster.running.delete(this);
    await this.stopWorkers();
    await this.connection.close();
    await this.server.stop();
  }
}

export type TurnProfile = Record<'decode' | 'inference' | 'warehouse', number>;

/** A worker's CPU turns so far (it keeps OBJINFER_PROFILE up to date; see cpuTurn). */
export function readTurnProfile(file: string): TurnProfile {
  if (!existsSync(file)) return { decode: 0, inference: 0, warehouse: 0 };
  return JSON.parse(readFileSync(file, 'utf8')) as TurnProfile;
}

/** CPU milliseconds of a process's own threads and of its children (the decoders), from /proc. */
export function cpuMs(pid: number): { main: number; threads: number; children: number } {
  const ticks = (path: string) => {
    const stat = readFileSync(path, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10; // utime + stime, in 10 ms clock ticks
  };
  const main = ticks(`/proc/${pid}/task/${pid}/stat`);
  const all = ticks(`/proc/${pid}/stat`);
  let children = 0;
  for (const child of readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) {
    try {
      children += ticks(`/proc/${child}/stat`);
    } catch {
      // ended since it was listed
    }
  }
  return { main, threads: all - main, children };
}
