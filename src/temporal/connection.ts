/**
 * Where Temporal is. A configured address (TEMPORAL_ADDRESS, or an envconfig profile:
 * TEMPORAL_PROFILE / temporal.toml, with API key or mTLS for Temporal Cloud) is used as
 * is. With none, objinfer uses its own dev server: the one it started and recorded in
 * .objinfer/temporal-dev-server.json (any port), else 127.0.0.1:7233, starting one if needed.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { loadClientConfigProfile, loadClientConnectConfig } from '@temporalio/envconfig';
import { temporal } from '@temporalio/proto';
import type { NativeConnection } from '@temporalio/worker';
import { stateDir } from '../stateDir';
import { SEARCH_ATTRIBUTE_DEFINITIONS } from '../workflows/contract';
import { findTemporalCli, startDevServer, waitForServer, type DevServer } from './devServer';
import { alive } from '../processes';

export const DEFAULT_PORT = 7233;
export const DEFAULT_UI_PORT = 8233;

export interface TemporalTarget {
  address: string;
  namespace: string;
  /** Where to look at runs in a browser, when known. */
  uiUrl?: string;
  /** True when the address came from TEMPORAL_ADDRESS or a profile, not objinfer's default. */
  configured: boolean;
  /** True when it is the dev server objinfer started (recorded in the state folder). */
  ours: boolean;
  connectionOptions: ReturnType<typeof loadClientConnectConfig>['connectionOptions'];
}

export class TemporalUnreachable extends Error {
  override readonly name = 'TemporalUnreachable';
}

/**
 * Where the dev server objinfer starts keeps its database and its note (PID and ports): one
 * per user, so that every folder finds it. OBJINFER_HOME when set, else the user's state
 * directory ($XDG_STATE_HOME/objinfer, by default ~/.local/state/objinfer).
 */
export function serverStateDir(env = process.env): string {
  if (env.OBJINFER_HOME) return resolve(env.OBJINFER_HOME);
  return join(env.XDG_STATE_HOME || join(env.HOME || homedir(), '.local', 'state'), 'objinfer');
}

export interface DevServerRecord {
  pid: number;
  port: number;
  uiPort: number;
}

export function devServerPaths(home = serverStateDir()) {
  return {
    dbFile: join(home, 'temporal.db'),
    logFile: join(home, 'temporal-dev-server.log'),
    recordFile: join(home, 'temporal-dev-server.json'),
  };
}

/** Where notes may be: the user's, then ./.objinfer's, where objinfer before 0.2 kept it. */
function recordFiles(): string[] {
  const files = [devServerPaths().recordFile];
  if (!process.env.OBJINFER_HOME) files.push(devServerPaths(stateDir()).recordFile);
  return files;
}

/** The dev server objinfer started and left running, when it still runs. */
export function readDevServerRecord(): DevServerRecord | undefined {
  for (const recordFile of recordFiles()) {
    if (!existsSync(recordFile)) continue;
    try {
      const record = JSON.parse(readFileSync(recordFile, 'utf8')) as DevServerRecord;
      if (Number.isInteger(record.pid) && record.pid > 0 && alive(record.pid)) return record;
    } catch {
      // unreadable: not a note of a running server
    }
  }
  return undefined;
}

export function forgetDevServer(): void {
  for (const recordFile of recordFiles()) rmSync(recordFile, { force: true });
}

export interface TargetOptions {
  /** Port for objinfer's own dev server (the CLI's --port), when no address is configured. */
  port?: number;
  uiPort?: number;
}

export function resolveTarget(env = process.env, options: TargetOptions = {}): TemporalTarget {
  const profile = loadClientConfigProfile({ overrideEnvVars: env as Record<string, string> });
  const connect = loadClientConnectConfig({ overrideEnvVars: env as Record<string, string> });
  const configuredAddress = profile.address || undefined; // TEMPORAL_ADDRESS= (empty) is unset
  const configured = Boolean(configuredAddress);
  const record = configured || options.port ? undefined : readDevServerRecord();
  const port = options.port ?? record?.port ?? DEFAULT_PORT;
  const uiPort = options.uiPort ?? record?.uiPort ?? DEFAULT_UI_PORT;
  const address = configuredAddress ?? `127.0.0.1:${port}`;
  const uiUrl = env.TEMPORAL_UI_URL ?? (configured ? undefined : `http://localhost:${uiPort}`);
  return {
    address,
    namespace: profile.namespace ?? 'default',
    uiUrl,
    configured,
    ours: Boolean(record) && !options.port,
    connectionOptions: { ...connect.connectionOptions, address },
  };
}

export interface Connected {
  client: Client;
  connection: Connection;
  target: TemporalTarget;
  /** Whether objinfer's search attributes exist on the server. */
  searchAttributes: boolean;
  /** Set when this call started a dev server. */
  devServer?: DevServer;
  close(): Promise<void>;
}

export interface ConnectOptions extends TargetOptions {
  startDevServer?: 'detached' | 'attached' | 'no';
  /** Things worth saying on the way (e.g. a server on the port that objinfer did not start). */
  onNotice?: (text: string) => void;
}

/**
 * Connects to Temporal; with nothing configured and nothing listening on the port,
 * starts a dev server first (left running when `detached`).
 */
export async function connectTemporal(options: ConnectOptions = {}): Promise<Connected> {
  let target = resolveTarget(process.env, options);
  let devServer: DevServer | undefined;
  let connection = await tryConnect(target);
  if (!connection) {
    if (target.configured || (options.startDevServer ?? 'detached') === 'no') {
      throw new TemporalUnreachable(
        `cannot reach Temporal at ${target.address}` +
          (target.configured
            ? ' (from TEMPORAL_ADDRESS or your envconfig profile); check the address and credentials'
            : '; start one with `objinfer dev-server`'),
      );
    }
    devServer = await startLocalDevServer(options.startDevServer === 'attached' ? 'attached' : 'detached', options);
    target = resolveTarget(process.env, options);
    connection = await tryConnect(target);
    if (!connection) throw new TemporalUnreachable(`started a dev server but cannot reach it at ${target.address}`);
  } else if (!target.configured && !target.ours) {
    const info = await connection.workflowService.getSystemInfo({}).catch(() => undefined);
    options.onNotice?.(
      `using the Temporal server already listening on ${target.address}${info?.serverVersion ? ` (version ${info.serverVersion})` : ''}, ` +
        'which objinfer did not start; to use objinfer\'s own beside it, run `objinfer dev-server --port 7244` (docs/operations.md "Beside another Temporal")',
    );
  }
  const client = new Client({ connection, namespace: target.namespace });
  const searchAttributes = await ensureSearchAttributes(connection, target.namespace);
  return {
    client,
    connection,
    target,
    searchAttributes,
    devServer,
    close: async () => {
      await connection!.close();
    },
  };
}

async function tryConnect(target: TemporalTarget): Promise<Connection | undefined> {
  try {
    const connection = await Connection.connect({ ...target.connectionOptions, connectTimeout: 3000 } as Parameters<typeof Connection.connect>[0]);
    try {
      await connection.workflowService.getSystemInfo({});
      return connection;
    } catch (error) {
      await connection.close();
      throw error;
    }
  } catch {
    return undefined;
  }
}

/** A worker connection to the same target (the worker's native runtime loads here, not for every command). */
export async function connectWorker(target: TemporalTarget): Promise<NativeConnection> {
  const { NativeConnection } = await import('@temporalio/worker');
  try {
    return await NativeConnection.connect(target.connectionOptions);
  } catch (error) {
    throw new TemporalUnreachable(`cannot reach Temporal at ${target.address}: ${(error as Error).message}`);
  }
}

export async function startLocalDevServer(mode: 'detached' | 'attached', options: TargetOptions = {}): Promise<DevServer> {
  const port = options.port ?? DEFAULT_PORT;
  const uiPort = options.uiPort ?? (options.port ? options.port + 1000 : DEFAULT_UI_PORT);
  const cliPath = findTemporalCli();
  if (!cliPath) return startDownloadedDevServer(port, uiPort);
  const paths = devServerPaths();
  const server = await startDevServer({ cliPath, port, uiPort, dbFile: paths.dbFile, logFile: paths.logFile, detached: mode === 'detached' });
  mkdirSync(serverStateDir(), { recursive: true });
  writeFileSync(paths.recordFile, JSON.stringify({ pid: server.pid, port, uiPort } satisfies DevServerRecord));
  return server;
}

/** Last resort for users with internet: the SDK downloads the CLI; the server lives as long as this process. */
async function startDownloadedDevServer(port: number, uiPort: number): Promise<DevServer> {
  const { TestWorkflowEnvironment } = await import('@temporalio/testing');
  const paths = devServerPaths();
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      ip: '127.0.0.1',
      port,
      ui: true,
      uiPort,
      dbFilename: paths.dbFile,
      extraArgs: SEARCH_ATTRIBUTE_DEFINITIONS.flatMap(([n, t]) => ['--search-attribute', `${n}=${t}`]),
    },
  });
  await waitForServer(env.address, 60_000);
  return { address: env.address, uiUrl: `http://localhost:${uiPort}`, pid: -1, stop: () => env.teardown() };
}

/**
 * Registers objinfer's search attributes when missing. On servers that refuse
 * (e.g. Temporal Cloud without admin rights) runs go ahead without them.
 */
export async function ensureSearchAttributes(connection: Connection, namespace: string): Promise<boolean> {
  const types: Record<string, temporal.api.enums.v1.IndexedValueType> = {
    Keyword: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    Int: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_INT,
  };
  try {
    const existing = await connection.operatorService.listSearchAttributes({ namespace });
    const missing = SEARCH_ATTRIBUTE_DEFINITIONS.filter(([name]) => !(name in (existing.customAttributes ?? {})));
    if (missing.length === 0) return true;
    await connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(missing.map(([name, type]) => [name, types[type]!])),
    });
    return true;
  } catch (error) {
    process.emitWarning(`objinfer search attributes are not registered on ${namespace} (${(error as Error).message}); runs will not be searchable by them`);
    return false;
  }
}

export function workflowUiUrl(target: TemporalTarget, workflowId: string): string | undefined {
  if (!target.uiUrl) return undefined;
  return `${target.uiUrl}/namespaces/${encodeURIComponent(target.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}
