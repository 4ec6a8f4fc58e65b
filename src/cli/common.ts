/**
 * What every command's definition shares: flag parsers, the output-format option, exit codes,
 * the user's error. Light on purpose: `--help` and `--version` load this and commander only;
 * what a command needs once it runs is in ./context.
 */
import { InvalidArgumentError, Option, type CommanderError } from 'commander';
import type { PipelineSummary } from '../workflows/contract';
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

/** `A,B`: two prediction versions. */
export function versionPair(value: string): [string, string] {
  const versions = value.split(',').map((v) => v.trim());
  if (versions.length !== 2 || versions.some((v) => v === '') || versions[0] === versions[1])
    throw new InvalidArgumentError('give two different prediction versions, comma-separated (A,B), as `objinfer results` shows them');
  return versions as [string, string];
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

/** Help and version are not errors; any other refusal by commander is bad input. */
export function commanderExit(error: CommanderError): number {
  return error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help' ? Exit.ok : Exit.usage;
}

/** The user stopped watching (Ctrl-C, SIGTERM); the run itself goes on. */
export class Interrupted extends Error {
  override readonly name = 'Interrupted';
  constructor(
    readonly signal: NodeJS.Signals,
    readonly workflowId: string,
    readonly pipeline: string,
  ) {
    super(`interrupted by ${signal}`);
  }

  get exitCode(): number {
    return this.signal === 'SIGINT' ? Exit.interrupted : Exit.terminated;
  }
}

/** The exit code for a finished run: a run that had images to do and predicted none failed. */
export function exitCodeOf(summary: PipelineSummary): number {
  const pending = summary.predicted + summary.failed;
  return pending > 0 && summary.predicted === 0 ? Exit.failed : Exit.ok;
}
