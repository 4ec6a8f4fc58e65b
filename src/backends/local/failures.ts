/**
 * How the local backend's failures map onto objinfer's types, as gcp/errors.ts does for
 * Google's: what is known to pass (a busy file, too many open files, a write conflict) is
 * retried; a full disk fails at once naming the path; everything else fails the step with
 * its message, since a retry would meet it again (an unknown error retried without end kept
 * runs going for hours: a model ONNX Runtime cannot run, a warehouse that is /dev/null).
 */
import { statfsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { RunSpec } from '../../config';
import { ErrorType, ObjinferError } from '../../errors';
import { formatBytes } from '../../format';

const TRANSIENT_CODES = new Set(['EAGAIN', 'EBUSY', 'EINTR', 'EMFILE', 'ENFILE', 'ETIMEDOUT', 'ECONNRESET']);
const TRANSIENT_MESSAGES = [/write-write conflict/i, /Conflict on tuple/i, /Could not set lock/i, /Conflicting lock/i];
/** DuckDB's words for a write that did not reach the disk; with the disk full, that is why. */
const WRITE_FAILED = /Could not (write|fsync|truncate|extend)|CHECKPOINT|No space left on device/i;
/** Below this much free space, a failed write is taken to be the full disk's doing. */
const NEARLY_FULL_BYTES = 16 * 1024 * 1024;
/**
 * Free space the warehouse's disk must have before objinfer writes to it. DuckDB 1.5 aborts
 * the whole process when a commit it cannot write fails to revert (seen with a full disk:
 * "Failed to append to PRIMARY_object_tables ... assertion failure"), so a write is not
 * started on a disk this full. A disk that fills during a write can still meet it.
 */
export const MIN_FREE_BYTES = 32 * 1024 * 1024;

/** Throws NoSpace when the warehouse's disk has less than MIN_FREE_BYTES free. */
export function assertRoomToWrite(spec: RunSpec): void {
  const free = freeBytes(dirname(resolve(spec.local.warehouse)));
  if (free !== undefined && free < MIN_FREE_BYTES) {
    throw noSpace(spec, spec.local.warehouse, `objinfer writes to a warehouse only with at least ${formatBytes(MIN_FREE_BYTES)} free on its disk`);
  }
}

/** The error a step of the local backend throws, classified. `step` names it in the message. */
export function localFailure(error: unknown, spec: RunSpec, step: string): unknown {
  // Not `instanceof Error`: DuckDB's errors come from another realm when code runs in a VM context (jest).
  if (error instanceof ObjinferError || typeof (error as Error | undefined)?.message !== 'string') return error;
  const { code, path: errorPath, message: text } = error as NodeJS.ErrnoException;
  const message = text.split('\n')[0]!;
  const path = errorPath ?? /"(\/[^"]+)"/.exec(text)?.[1];
  const full = code === 'ENOSPC' || /No space left on device/i.test(text);
  if (full || (WRITE_FAILED.test(text) && nearlyFull(path ?? spec.local.warehouse))) return noSpace(spec, path ?? spec.local.warehouse, message);
  if ((code && TRANSIENT_CODES.has(code)) || TRANSIENT_MESSAGES.some((pattern) => pattern.test(message))) {
    return new ObjinferError(ErrorType.Transient, `${step}: ${message}`);
  }
  return new ObjinferError(ErrorType.StepFailed, `${step}: ${message}`);
}

function freeBytes(path: string): number | undefined {
  for (let dir = resolve(path); ; dir = dirname(dir)) {
    try {
      const fs = statfsSync(dir);
      return fs.bavail * fs.bsize;
    } catch {
      if (dir === dirname(dir)) return undefined;
    }
  }
}

function nearlyFull(path: string): boolean {
  const free = freeBytes(path);
  return free !== undefined && free < NEARLY_FULL_BYTES;
}

/** Which setting puts files at `path`, to say what to point elsewhere. */
function fieldOf(spec: RunSpec, path: string): string {
  const at = resolve(path);
  if (at.startsWith(dirname(resolve(spec.local.warehouse)))) return 'local.warehouse';
  if (at.startsWith(resolve(spec.local.storage))) return 'local.storage';
  return 'the folder';
}

export function noSpace(spec: RunSpec, path: string, cause: string): ObjinferError {
  const free = freeBytes(path);
  return new ObjinferError(
    ErrorType.NoSpace,
    `no space left on device writing ${path}${free === undefined ? '' : ` (${formatBytes(free)} free there)`}: free some space or point ` +
      `${fieldOf(spec, path)} at another disk, then run again; what was written is kept and the run goes on where it stopped (${cause})`,
  );
}
