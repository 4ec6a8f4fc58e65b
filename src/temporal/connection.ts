/**
 * Where Temporal is. A configured address (TEMPORAL_ADDRESS, or an envconfig profile:
 * TEMPORAL_PROFILE / temporal.toml, with API key or mTLS for Temporal Cloud) is used as
 * is. With none, objinfer uses a dev server on 127.0.0.1:7233, starting one if needed.
 */
import { existsSync, readFileSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { loadClientConfigProfile, loadClientConnectConfig } from '@temporalio/envconfig';
import { NativeConnection } from '@temporalio/worker';
import { temporal } from '@temporalio/proto';
import { SEARCH_ATTRIBUTE_DEFINITIONS } from '../workflows/contract';
import { findTemporalCli, startDevServer, waitForServer, type DevServer } from './devServer';

export const DEFAULT_PORT = 7233;
export const DEFAULT_UI_PORT = 8233;

export interface TemporalTarget {
  address: string;
  namespace: string;
  /** Where to look at runs in a browser, when known. */
  uiUrl?: string;
  /** True when the address came from TEMPORAL_ADDRESS or a profile, not objinfer's default. */
  configured: boolean;
  connectionOptions: ReturnType<typeof loadClientConnectConfig>['connectionOptions'];
}

export class TemporalUnreachable extends Error {
  override readonly name = 'TemporalUnreachable';
}

/** The state folder for the dev server, demo and warehouse: OBJINFER_HOME or ./.objinfer. */
export function stateDir(env = process.env): string {
  return resolve(env.OBJINFER_HOME ?? '.objinfer');
}

export function resolveTarget(env = process.env): TemporalTarget {
  const profile = loadClientConfigProfile({ overrideEnvVars: env as Record<string, string> });
  const connect = loadClientConnectConfig({ overrideEnvVars: env as Record<string, string> });
  const configured = Boolean(profile.address);
  const address = profile.address ?? `127.0.0.1:${DEFAULT_PORT}`;
  const uiUrl = env.TEMPORAL_UI_URL ?? (configured ? undefined : `http://localhost:${DEFAULT_UI_PORT}`);
  return {
    address,
    namespace: profile.namespace ?? 'default',
    uiUrl,
    configured,
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

/**
 * Connects to Temporal; with nothing configured and nothing listening on the default
 * port, starts a dev server first (left running when `detached`).
 */
export async function connectTemporal(options: { startDevServer?: 'detached' | 'attached' | 'no' } = {}): Promise<Connected> {
  const target = resolveTarget();
  let devServer: DevServer | undefined;
  let connection = await tryConnect(target);
  if (!connection) {
    if (target.configured || (options.startDevServer ?? 'detached') === 'no') {
      throw new TemporalUnreachable(
        `cannot reach Temporal at ${target.address}` +
          (target.configured ? ' (from TEMPORAL_ADDRESS or your envconfig profile); check the address and credentials' : '; start one with `objinfer dev-server`'),
      );
    }
    devServer = await startLocalDevServer(options.startDevServer === 'attached' ? 'attached' : 'detached');
    connection = await tryConnect(target);
    if (!connection) throw new TemporalUnreachable(`started a dev server but cannot reach it at ${target.address}`);
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
    await connection.workflowService.getSystemInfo({});
    return connection;
  } catch {
    return undefined;
  }
}

/** A worker connection to the same target. */
export async function connectWorker(target: TemporalTarget): Promise<NativeConnection> {
  try {
    return await NativeConnection.connect(target.connectionOptions);
  } catch (error) {
    throw new TemporalUnreachable(`cannot reach Temporal at ${target.address}: ${(error as Error).message}`);
  }
}

export function devServerPaths(home = stateDir()) {
  return {
    dbFile: join(home, 'temporal.db'),
    logFile: join(home, 'temporal-dev-server.log'),
    pidFile: join(home, 'temporal-dev-server.pid'),
  };
}

export async function startLocalDevServer(mode: 'detached' | 'attached'): Promise<DevServer> {
  const cliPath = findTemporalCli();
  if (!cliPath) {
    return startDownloadedDevServer();
  }
  const paths = devServerPaths();
  const server = await startDevServer({ cliPath, port: DEFAULT_PORT, uiPort: DEFAULT_UI_PORT, dbFile: paths.dbFile, logFile: paths.logFile, detached: mode === 'detached' });
  if (mode === 'detached') {
    mkdirSync(stateDir(), { recursive: true });
    writeFileSync(paths.pidFile, String(server.pid));
  }
  return server;
}

/** Last resort for users with internet: the SDK downloads the CLI; the server lives as long as this process. */
async function startDownloadedDevServer(): Promise<DevServer> {
  const { TestWorkflowEnvironment } = await import('@temporalio/testing');
  const paths = devServerPaths();
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      ip: '127.0.0.1',
      port: DEFAULT_PORT,
      ui: true,
      uiPort: DEFAULT_UI_PORT,
      dbFilename: paths.dbFile,
      extraArgs: Object.entries(SEARCH_ATTRIBUTE_DEFINITIONS).flatMap(([n, t]) => ['--search-attribute', `${n}=${t}`]),
    },
  });
  await waitForServer(env.address, 60_000);
  return { address: env.address, uiUrl: `http://localhost:${DEFAULT_UI_PORT}`, pid: -1, stop: () => env.teardown() };
}

export function readDevServerPid(): number | undefined {
  const { pidFile } = devServerPaths();
  if (!existsSync(pidFile)) return undefined;
  const pid = Number(readFileSync(pidFile, 'utf8'));
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

export function forgetDevServerPid(): void {
  rmSync(devServerPaths().pidFile, { force: true });
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
    const missing = Object.entries(SEARCH_ATTRIBUTE_DEFINITIONS).filter(([name]) => !(name in (existing.customAttributes ?? {})));
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
