/** What every command shares: config lookup, Temporal connection, user-facing errors. */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { ConfigError, loadConfig, type PipelineConfig } from '../config';
import { connectTemporal, stateDir, type Connected } from '../temporal/connection';

/** An error the user can fix; printed as one line with what to do. */
export class UsageError extends Error {
  constructor(message: string, readonly hint?: string) {
    super(message);
  }
}

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive whole number');
  return n;
}

/** --config, else ./objinfer.yaml, else the demo's config. */
export function findConfig(file?: string): PipelineConfig {
  const candidates = file ? [file] : ['objinfer.yaml', join(stateDir(), 'demo', 'objinfer.yaml')];
  const found = candidates.find((c) => existsSync(c));
  if (!found) {
    if (file) throw new ConfigError('--config', `file not found: ${resolve(file)}`);
    throw new UsageError('no config found', 'pass --config FILE, or run `objinfer demo` first');
  }
  return loadConfig(found);
}

export async function withTemporal<T>(work: (temporal: Connected) => Promise<T>, startDevServer: 'detached' | 'no' = 'detached'): Promise<T> {
  const temporal = await connectTemporal({ startDevServer });
  if (temporal.devServer) {
    console.error(`started a Temporal dev server at ${temporal.devServer.address} (UI ${temporal.devServer.uiUrl}); stop it with \`objinfer dev-server stop\``);
  }
  try {
    return await work(temporal);
  } finally {
    await temporal.close();
  }
}

