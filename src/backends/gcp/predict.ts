/**
 * Planning and running batches on BigQuery. The plan writes the run's pending table once
 * (one read of the object table's cached listing and of the results and errors tables);
 * each batch is then one script job over its slice of that table, with a job ID derived
 * from the run, the slice and the attempt, so a retry re-attaches instead of running twice.
 *
 * A single object BigQuery cannot decode fails the whole query, and BigQuery's messages
 * are not a contract: any failure not known to be passing (or a permission problem) splits
 * the slice by a second hash until each failing object stands alone and is recorded with
 * Google's message; everything else is still predicted. A batch that fails in every part
 * (a systematic cause) stops the run instead (see isolate).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorType, ObjinferError } from '../../errors';
import type { BatchPlan, BatchProgress, BatchRequest, BatchResult, BatchSlice } from '../../workflows/contract';
import type { GcpContext } from './context';
import { CANCELLED_REASON, classifyInfo, isAlreadyExists, isPropagationMessage, isStatementRefusal, type GoogleErrorInfo } from './errors';
import { runJob } from './jobs';
import {
  batchBoundsSql,
  batchCountsSql,
  batchJobId,
  countPendingSql,
  countSliceSql,
  fillPendingSql,
  pendingTableName,
  PENDING_COLUMNS,
  predictBatchSql,
  recordFailuresSql,
} from './sql';

/** Jobs a slice gets for passing failures before the batch activity gives up (Temporal retries it). */
const MAX_JOB_ATTEMPTS = 6;
/** Google's advice for rateLimitExceeded and backendError: back off exponentially, here 1 s to 32 s. */
const FIRST_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 32_000;
/** Halvings while isolating failing objects (2^24 objects). */
const MAX_SPLIT_DEPTH = 24;
/** A failing batch is first tried in this many parts: all of them failing is a systematic cause, not a bad object. */
const BREAKER_PARTS = 4;

export async function planBatches(ctx: GcpContext, modelVersion: string, runId: string): Promise<BatchPlan> {
  await ensurePendingTable(ctx, runId);
  const fill = fillPendingSql(ctx.spec, runId);
  await ctx.statement('plan: list what is still to do', ctx.statementJobId('pending', fill), fill, { model_version: modelVersion });
  const count = countPendingSql(ctx.spec, runId);
  const counted = await ctx.statement('plan: count', ctx.statementJobId('plan', count), count);
  const n: Record<string, number> = {};
  for (const row of await ctx.rows<{ status: string; n: number | string }>(counted)) n[row.status] = Number(row.n);
  const objectsSeen = Object.values(n).reduce((a, b) => a + b, 0);
  const pending = (n.pending ?? 0) + (n.refused ?? 0);
  return {
    modelVersion,
    objectsSeen,
    alreadyDone: n.done ?? 0,
    failedBefore: n.failed ?? 0,
    pending,
    batchCount: Math.ceil(pending / ctx.spec.batch.size),
  };
}

/** The run's pending table, empty, clustered on rank, gone after 7 days (made by API: DDL cannot cluster on the emulator). */
async function ensurePendingTable(ctx: GcpContext, runId: string): Promise<void> {
  const name = pendingTableName(runId);
  await ctx.call('plan: the pending table', async () => {
    const [exists] = await ctx.dataset.table(name).exists();
    if (exists) return;
    await ctx.dataset
      .createTable(name, { schema: PENDING_COLUMNS, clustering: { fields: ['rank'] }, expirationTime: String(Date.now() + PENDING_DAYS * 86_400_000) })
      .catch((error: unknown) => {
        if (!isAlreadyExists(error)) throw error;
      });
  });
}

const PENDING_DAYS = 7;

/** A batch with its URI range, which every statement of a rank-range batch reads as @uri_lo and @uri_hi. */
interface Bounded extends BatchRequest {
  bounds?: { uri_lo: string; uri_hi: string };
}

function paramsOf(request: Bounded, extra: Record<string, string> = {}): Record<string, string> {
  return { model_version: request.modelVersion, run_id: request.runId, ...(request.bounds ?? {}), ...extra };
}

/** The batch's URI range (one small read of its block of the pending table); undefined when it has no objects. */
async function bounded(ctx: GcpContext, request: BatchRequest, signal?: AbortSignal): Promise<Bounded | undefined> {
  if (!request.slice.ranks) return request;
  const sql = batchBoundsSql(ctx.spec, request.slice, request.runId);
  const outcome = await ctx.statement(`${label(request.slice)}: its URI range`, ctx.statementJobId('bounds', sql), sql, {}, signal);
  const [row] = await ctx.rows<{ uri_lo: string | null; uri_hi: string | null }>(outcome);
  if (!row?.uri_lo || !row.uri_hi) return undefined;
  return { ...request, bounds: { uri_lo: row.uri_lo, uri_hi: row.uri_hi } };
}

const NOTHING: BatchResult = { predicted: 0, failed: 0, labelCounts: {} };

export async function predictBatch(
  ctx: GcpContext,
  request: BatchRequest,
  onProgress?: (progress: BatchProgress) => void,
  signal?: AbortSignal,
): Promise<BatchResult> {
  const work = await bounded(ctx, request, signal);
  return work ? predictSlice(ctx, work, request.slice, onProgress, signal) : NOTHING;
}

function label(slice: BatchSlice): string {
  return `batch ${slice.index + 1}/${slice.count}${slice.split?.length ? ` part ${slice.split.join('')}` : ''}`;
}

type Progress = ((progress: BatchProgress) => void) | undefined;

async function predictSlice(ctx: GcpContext, request: Bounded, slice: BatchSlice, onProgress: Progress, signal?: AbortSignal): Promise<BatchResult> {
  const outcome = await runSlice(ctx, request, slice, onProgress, signal);
  if ('failure' in outcome) return isolate(ctx, request, slice, outcome.failure, onProgress, signal);
  return outcome;
}

/**
 * The slice's batch script, to its end: passing failures are retried with exponential
 * back-off (heartbeating while it waits); failures splitting cannot help stop the batch;
 * any other failure is returned, for isolation.
 */
async function runSlice(
  ctx: GcpContext,
  request: Bounded,
  slice: BatchSlice,
  onProgress: Progress,
  signal?: AbortSignal,
): Promise<BatchResult | { failure: string }> {
  const sql = predictBatchSql(ctx.spec, request.model, slice, request.runId);
  const params = paramsOf(request);
  for (let attempt = 1; attempt <= MAX_JOB_ATTEMPTS; attempt++) {
    const jobId = batchJobId(request.runId, slice, attempt);
    const outcome = await ctx.call(label(slice), () =>
      runJob(ctx.clients.bigquery, ctx.spec.location, { jobId, query: sql, params }, { signal, onPoll: () => onProgress?.({ jobId }) }),
    );
    if (!outcome.error) return countsOf(await ctx.rows(outcome));
    if (outcome.error.kind === 'transient') {
      if (attempt < MAX_JOB_ATTEMPTS) await backOff(attempt, () => onProgress?.({ jobId }), signal);
      continue;
    }
    if (mustStop(outcome.error)) throw classifyInfo(outcome.error, label(slice));
    return { failure: outcome.error.message };
  }
  throw new ObjinferError(ErrorType.WarehouseBusy, `${label(slice)}: ${MAX_JOB_ATTEMPTS} jobs in a row failed with passing errors`);
}

/** Waits 1 s, 2 s, 4 s ... (at most 32 s) before the next attempt, heartbeating each second. */
export async function backOff(attempt: number, heartbeat: () => void, signal?: AbortSignal): Promise<void> {
  const until = Date.now() + Math.min(FIRST_BACKOFF_MS * 2 ** (attempt - 1), MAX_BACKOFF_MS);
  while (Date.now() < until) {
    heartbeat();
    await sleep(Math.min(1000, until - Date.now()), undefined, { signal });
  }
}

/** Failures that splitting cannot help: permissions (or their propagation), missing things, cancellation, quotas, a refused statement. */
function mustStop(error: GoogleErrorInfo): boolean {
  return (
    isPropagationMessage(error.message) ||
    isStatementRefusal(error) ||
    error.kind === 'quota' ||
    error.reason === 'accessDenied' ||
    error.reason === 'notFound' ||
    error.reason === CANCELLED_REASON
  );
}

/**
 * Finds the objects a failing slice cannot predict. A whole batch is first tried in four
 * parts: when every part fails, the cause is not one object (the canary passed, so it is
 * something that changed since: capacity, a quota, the model), and the batch fails with
 * BigQuery's message, its objects still pending. Otherwise each failing part is halved
 * until the failing objects stand alone and are recorded with BigQuery's message.
 */
async function isolate(ctx: GcpContext, request: Bounded, slice: BatchSlice, error: string, onProgress: Progress, signal?: AbortSignal): Promise<BatchResult> {
  const params = paramsOf(request);
  const countSql = countSliceSql(ctx.spec, slice, request.runId);
  const counted = await ctx.statement('count a failing batch', ctx.statementJobId('count', countSql), countSql, params, signal);
  const pending = Number((await ctx.rows<{ pending: number | string }>(counted))[0]?.pending ?? 0);
  if (pending <= 1 || (slice.split?.length ?? 0) >= MAX_SPLIT_DEPTH) {
    await recordFailures(ctx, request, slice, `ML.PREDICT failed for this object: ${error}`, signal);
    return countSlice(ctx, request, slice, signal);
  }
  if (!slice.split?.length && pending >= BREAKER_PARTS) return breaker(ctx, request, slice, error, onProgress, signal);
  const halves = [0, 1].map((bit) => ({ ...slice, split: [...(slice.split ?? []), bit] }));
  const parts: BatchResult[] = [];
  for (const half of halves) parts.push(await predictSlice(ctx, request, half, onProgress, signal));
  return sum(parts);
}

async function breaker(ctx: GcpContext, request: Bounded, slice: BatchSlice, error: string, onProgress: Progress, signal?: AbortSignal): Promise<BatchResult> {
  const quarters = [0, 1, 2, 3].map((q) => ({ ...slice, split: [q >> 1, q & 1] }));
  const outcomes: { part: BatchSlice; outcome: BatchResult | { failure: string } }[] = [];
  for (const part of quarters) outcomes.push({ part, outcome: await runSlice(ctx, request, part, onProgress, signal) });
  const failures = outcomes.flatMap(({ outcome }) => ('failure' in outcome ? [outcome.failure] : []));
  if (failures.length === BREAKER_PARTS) {
    const distinct = [...new Set([error, ...failures])];
    throw new ObjinferError(
      ErrorType.Refused,
      `${label(slice)}: ML.PREDICT failed on the whole batch and on each of its ${BREAKER_PARTS} parts, so the cause is not one image; ` +
        `the run stops with the batch's images still pending (none recorded as failed): ${distinct.slice(0, 3).join(' | ')}. ` +
        'Fix the cause (the reservation, a quota, the model), then run again',
    );
  }
  const parts: BatchResult[] = [];
  for (const { part, outcome } of outcomes) parts.push('failure' in outcome ? await isolate(ctx, request, part, outcome.failure, onProgress, signal) : outcome);
  return sum(parts);
}

function sum(parts: BatchResult[]): BatchResult {
  return parts.reduce(
    (total, part) => {
      for (const [name, count] of Object.entries(part.labelCounts)) total.labelCounts[name] = (total.labelCounts[name] ?? 0) + count;
      return { predicted: total.predicted + part.predicted, failed: total.failed + part.failed, labelCounts: total.labelCounts };
    },
    { predicted: 0, failed: 0, labelCounts: {} } as BatchResult,
  );
}

async function recordFailures(ctx: GcpContext, request: Bounded, slice: BatchSlice, error: string, signal?: AbortSignal): Promise<void> {
  const sql = recordFailuresSql(ctx.spec, slice, request.runId);
  const params = paramsOf(request, { error });
  await ctx.statement('record objects that failed', ctx.statementJobId('fail', sql), sql, params, signal);
}

async function countSlice(ctx: GcpContext, request: Bounded, slice: BatchSlice, signal?: AbortSignal): Promise<BatchResult> {
  const sql = batchCountsSql(ctx.spec, slice);
  const params = paramsOf(request);
  return countsOf(await ctx.rows(await ctx.statement('count a batch', ctx.statementJobId('counts', sql), sql, params, signal)));
}

function countsOf(rows: unknown[]): BatchResult {
  const result: BatchResult = { predicted: 0, failed: 0, labelCounts: {} };
  for (const row of rows as { kind: string; label: string; n: number | string }[]) {
    if (row.kind === 'failed') result.failed += Number(row.n);
    else {
      result.labelCounts[row.label] = Number(row.n);
      result.predicted += Number(row.n);
    }
  }
  return result;
}

/** Records the slice's objects as failed with the reason (narrowing found an object that kills its worker). */
export async function recordUnprocessable(ctx: GcpContext, request: BatchRequest, reason: string): Promise<BatchResult> {
  const work = await bounded(ctx, request);
  if (!work) return NOTHING;
  await recordFailures(ctx, work, request.slice, reason);
  return countSlice(ctx, work, request.slice);
}
