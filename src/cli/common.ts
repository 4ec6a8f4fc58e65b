/** What every command shares: config lookup, Temporal connection, output format, user-facing errors. */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { InvalidArgumentError, Option } from 'commander';
import { ConfigError, loadConfig, type LoadOptions, type RunSpec } from '../config';
import { connectTemporal, stateDir, type Connected, type TargetOptions } from '../temporal/connection';
import { protectedOutput } from '../outputFiles';
import { FORMATS, type Format } from './output';

/** An error the user can fix; printed as one line with what to do; exit 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

/** Exit codes, as the docs state them. */
export const Exit = {
  ok: 0,
  /** The run failed, or every image it had to do failed. */
  failed: 1,
  /** Bad input: flags, config, a run or schedule that does not exist. */
  usage: 2,
  temporalUnreachable: 3,
  /** The run was cancelled or terminated. */
  cancelled: 4,
  /** Ctrl-C (SIGINT) while watching: the run goes on on the server. */
  interrupted: 130,
  /** SIGTERM while watching: the run goes on on the server. */
  terminated: 143,
} as const;

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive whole number');
  return n;
}

export function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError('must be a port number (1-65535)');
  return n;
}

export function score(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('must be a number, e.g. 0.5');
  return n;
}

export function isoTime(value: string): Date {
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) throw new InvalidArgumentError('must be a time in ISO 8601, e.g. 2026-11-24T06:00:00Z');
  return date;
}

export function outputOption(defaultFormat: Format = 'table'): Option {
  return new Option('-o, --output <format>', 'output format').choices([...FORMATS]).default(defaultFormat);
}

/** --config, else ./objinfer.yaml, else the demo's config: the spec, and the file it came from. */
export function findConfigFile(file?: string, options: LoadOptions = {}): { spec: RunSpec; file: string } {
  const candidates = file ? [file] : ['objinfer.yaml', join(stateDir(), 'demo', 'objinfer.yaml')];
  const found = candidates.find((c) => existsSync(c));
  if (!found) {
    if (file) throw new ConfigError({ field: '--config', problem: `file not found: ${resolve(file)}` });
    throw new UsageError('no config found', 'pass --config FILE, or run `objinfer demo` first');
  }
  return { spec: loadConfig(found, {}, options), file: resolve(found) };
}

export function findConfig(file?: string, options: LoadOptions = {}): RunSpec {
  return findConfigFile(file, options).spec;
}

/** `--out`, checked: never a file the pipeline keeps or reads (outputFiles.ts). */
export function outputPath(out: string, spec: RunSpec, configFile: string): string {
  const problem = protectedOutput(out, spec, configFile);
  if (problem) throw new UsageError(problem, 'nothing was written');
  return resolve(out);
}

export async function withTemporal<T>(
  work: (temporal: Connected) => Promise<T>,
  startDevServer: 'detached' | 'no' = 'detached',
  target: TargetOptions = {},
): Promise<T> {
  const temporal = await connectTemporal({ startDevServer, ...target, onNotice: (text) => console.error(`objinfer: ${text}`) });
  if (temporal.devServer) {
    console.error(`started a Temporal dev server at ${temporal.devServer.address} (UI ${temporal.devServer.uiUrl}); stop it with \`objinfer dev-server stop\``);
  }
  try {
    return await work(temporal);
  } finally {
    await temporal.close();
  }
}
