/**
 * goccy/bigquery-emulator: BigQuery's REST API over Google's ZetaSQL analyser, pinned and
 * built once by scripts/setup-bigquery-emulator.sh into a cache outside the clone.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BigQuery } from '@google-cloud/bigquery';
import { OAuth2Client } from 'google-auth-library';
import { PROJECT_ROOT } from '../paths';
import { freePorts } from '../ports';

export const EMULATOR_VERSION = 'v0.6.6';

export function emulatorBinary(): string {
  const cache = process.env.OBJINFER_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'objinfer');
  const binary = join(cache, 'bigquery-emulator', EMULATOR_VERSION, 'bigquery-emulator');
  if (existsSync(binary)) return binary;
  const built = spawnSync(join(PROJECT_ROOT, 'scripts', 'setup-bigquery-emulator.sh'), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (built.status !== 0 || !existsSync(binary)) throw new Error(`the BigQuery emulator is not built (${binary}); run scripts/setup-bigquery-emulator.sh`);
  return binary;
}

export interface Emulator {
  url: string;
  project: string;
  /** A client straight to the emulator, for the harness's own statements (never the product's). */
  direct: BigQuery;
  stop(): Promise<void>;
}

export async function startEmulator(project: string): Promise<Emulator> {
  const [port, grpcPort] = (await freePorts(2)) as [number, number];
  const child: ChildProcess = spawn(
    emulatorBinary(),
    [`--project=${project}`, '--host=127.0.0.1', `--port=${port}`, `--grpc-port=${grpcPort}`, '--log-level=error'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2000)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    const ready = await fetch(`${url}/bigquery/v2/projects/${project}/datasets`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the BigQuery emulator did not start: ${stderr}`);
    await sleep(100);
  }
  const auth = new OAuth2Client();
  auth.setCredentials({ access_token: 'emulator' });
  return {
    url,
    project,
    direct: new BigQuery({ projectId: project, apiEndpoint: url, authClient: auth as never }),
    stop: async () => {
      child.kill('SIGKILL');
    },
  };
}
