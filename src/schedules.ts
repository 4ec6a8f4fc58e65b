/**
 * Scheduled re-inference over Temporal Schedules. Each scheduled run is an ordinary,
 * incremental inferencePipeline: a slot with no new images finishes without inference.
 */
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  type Client,
  type ScheduleDescription,
  type ScheduleHandle,
  type ScheduleSpec,
} from '@temporalio/client';
import { describeSpec as describeRunSpec, durationMs, specKey, type RunSpec } from './config';
import { scheduledPipeline } from './workflows';
import { Ids, SPEC_MEMO_KEY, type PipelineInput, type PipelineSummary, type ScheduledOutcome } from './workflows/contract';
import { searchAttributesFor } from './workflows/searchAttributes';
import { OVERLAP_POLICIES, type OverlapName } from './scheduleOverlap';

export interface ScheduleRequest {
  cron?: string;
  every?: string;
  timezone?: string;
  jitter?: string;
  catchupWindow?: string;
  overlap?: OverlapName;
  note?: string;
}

/** A request that cannot become a schedule; nothing was created. */
export class ScheduleSpecError extends Error {
  override readonly name = 'ScheduleSpecError';
  constructor(
    readonly field: string,
    readonly problem: string,
  ) {
    super(`${field}: ${problem}`);
  }
}

const CRON_SHORTHAND = /^@(yearly|annually|monthly|weekly|daily|midnight|hourly)$/;
const CRON_FIELD = /^[0-9A-Za-z*?,/#LW-]+$/;

/** Checks the shape here, so a typo gets a clear message; the server checks the rest. */
export function validateScheduleRequest(request: ScheduleRequest): void {
  if ((request.cron === undefined) === (request.every === undefined)) {
    throw new ScheduleSpecError('--cron/--every', 'give exactly one of --cron EXPR or --every DURATION');
  }
  if (request.cron !== undefined) {
    const fields = request.cron.trim().split(/\s+/);
    const shaped = CRON_SHORTHAND.test(request.cron.trim()) || (fields.length >= 5 && fields.length <= 7 && fields.every((f) => CRON_FIELD.test(f)));
    if (!shaped) {
      throw new ScheduleSpecError(
        '--cron',
        `"${request.cron}" is not a cron expression: use 5 fields "minute hour day-of-month month day-of-week", e.g. "0 * * * *", or @hourly/@daily`,
      );
    }
  }
  for (const [field, value] of [
    ['--every', request.every],
    ['--jitter', request.jitter],
    ['--catchup-window', request.catchupWindow],
  ] as const) {
    if (value !== undefined && !durationMs(value)) {
      throw new ScheduleSpecError(field, `"${value}" is not a positive duration such as "30s", "15m", "1h" or "1d"`);
    }
  }
  if (request.timezone !== undefined) {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: request.timezone });
    } catch {
      throw new ScheduleSpecError('--timezone', `"${request.timezone}" is not an IANA time zone such as "Europe/Paris" or "UTC"`);
    }
  }
  if (request.overlap !== undefined && !(request.overlap in OVERLAP_POLICIES)) {
    throw new ScheduleSpecError('--overlap', `"${request.overlap}" is not one of ${Object.keys(OVERLAP_POLICIES).join(', ')}`);
  }
}

function specOf(request: ScheduleRequest): ScheduleSpec {
  return {
    ...(request.cron !== undefined ? { cronExpressions: [request.cron] } : { intervals: [{ every: durationMs(request.every!)! }] }),
    ...(request.jitter ? { jitter: durationMs(request.jitter)! } : {}),
    ...(request.timezone ? { timezone: request.timezone } : {}),
  };
}

/** Same config and same spec give the same fingerprint: how `create` knows it has nothing to do. */
function fingerprint(config: RunSpec, request: ScheduleRequest): string {
  const { note: _note, ...spec } = request;
  return createHash('sha256')
    .update(JSON.stringify({ config, spec: { overlap: 'skip', ...spec } }))
    .digest('hex')
    .slice(0, 16);
}

function scheduleOptions(config: RunSpec, request: ScheduleRequest, searchAttributes: boolean) {
  const input: PipelineInput = { spec: config, specKey: specKey(config), searchAttributes };
  return {
    spec: specOf(request),
    action: {
      type: 'startWorkflow' as const,
      // A slot runs the pipeline as a child under its own ID: one run per pipeline, whoever starts it.
      workflowType: scheduledPipeline,
      workflowId: Ids.scheduledRun(config.name),
      taskQueue: config.temporal.taskQueue,
      args: [input] as [PipelineInput],
      // The fingerprint rides on the action, which `update` replaces (a schedule's own memo is fixed).
      memo: {
        config: describeRunSpec(config),
        objinferFingerprint: fingerprint(config, request),
        objinferScheduleSpec: specText(request),
        [SPEC_MEMO_KEY]: config,
      },
      staticSummary: `objinfer ${config.name} (scheduled): ${config.model.name} over ${config.sourceUris.join(', ')}`,
      typedSearchAttributes: searchAttributes ? searchAttributesFor(config) : undefined,
    },
    policies: {
      overlap: OVERLAP_POLICIES[request.overlap ?? 'skip'],
      catchupWindow: request.catchupWindow ? durationMs(request.catchupWindow)! : undefined,
    },
    memo: { pipeline: config.name },
  };
}

export type CreateOutcome = 'created' | 'unchanged';

/**
 * Creates the pipeline's schedule. Idempotent: the same config and spec again is a no-op;
 * a different one is refused with a pointer to `update`.
 */
export async function createSchedule(
  client: Client,
  config: RunSpec,
  request: ScheduleRequest,
  options: { searchAttributes?: boolean } = {},
): Promise<{ scheduleId: string; outcome: CreateOutcome }> {
  validateScheduleRequest(request);
  const scheduleId = Ids.schedule(config.name);
  const built = scheduleOptions(config, request, options.searchAttributes ?? false);
  try {
    await client.schedule.create({ scheduleId, ...built, state: { note: request.note } });
    return { scheduleId, outcome: 'created' };
  } catch (error) {
    if (!(error instanceof ScheduleAlreadyRunning)) throw asSpecError(error, request);
  }
  const existing = await client.schedule.getHandle(scheduleId).describe();
  const existingFingerprint = existing.action.type === 'startWorkflow' ? existing.action.memo?.objinferFingerprint : undefined;
  if (existingFingerprint === built.action.memo.objinferFingerprint) return { scheduleId, outcome: 'unchanged' };
  throw new ScheduleSpecError(scheduleId, 'a schedule with this name exists with a different config or spec; change it with `objinfer schedule update`');
}

export async function updateSchedule(client: Client, config: RunSpec, request: ScheduleRequest, options: { searchAttributes?: boolean } = {}): Promise<string> {
  validateScheduleRequest(request);
  const scheduleId = Ids.schedule(config.name);
  const built = scheduleOptions(config, request, options.searchAttributes ?? false);
  try {
    await client.schedule.getHandle(scheduleId).update((previous) => ({
      ...previous,
      spec: built.spec,
      action: built.action,
      policies: { ...previous.policies, ...built.policies, catchupWindow: built.policies.catchupWindow ?? previous.policies.catchupWindow },
      state: { ...previous.state, note: request.note ?? previous.state.note },
    }));
  } catch (error) {
    throw asSpecError(error, request);
  }
  return scheduleId;
}

/** Triggers now under the schedule's own overlap policy (the SDK would default to allow-all). */
export async function triggerSchedule(client: Client, scheduleId: string): Promise<void> {
  const handle = client.schedule.getHandle(scheduleId);
  const { policies } = await handle.describe();
  await handle.trigger(policies.overlap ?? 'SKIP');
}

/** Runs every slot of [from, to] one after another; each run is incremental. */
export async function backfillSchedule(client: Client, scheduleId: string, from: Date, to: Date): Promise<void> {
  if (!(from < to)) throw new ScheduleSpecError('--from/--to', `--from (${from.toISOString()}) must be before --to (${to.toISOString()})`);
  await client.schedule.getHandle(scheduleId).backfill({ start: from, end: to, overlap: 'BUFFER_ALL' });
}

export interface RecentRun {
  workflowId: string;
  scheduledAt: Date;
  status: string;
  /** What the slot did: predicted images, or stood aside for a run already going. */
  outcome?: 'ran' | 'stood aside';
  summary?: Pick<PipelineSummary, 'predicted' | 'failed' | 'alreadyDone' | 'objectsSeen'>;
}

export interface ScheduleReport {
  scheduleId: string;
  pipeline: string;
  spec: string;
  overlap: string;
  paused: boolean;
  note: string;
  nextActionTimes: Date[];
  recentRuns: RecentRun[];
}

export async function describeSchedule(client: Client, scheduleId: string): Promise<ScheduleReport> {
  const handle: ScheduleHandle = client.schedule.getHandle(scheduleId);
  const description: ScheduleDescription = await handle.describe();
  const recentRuns = await Promise.all(
    description.info.recentActions.map(async (action): Promise<RecentRun> => {
      const started = action.action.workflow;
      const run = client.workflow.getHandle(started.workflowId, started.firstExecutionRunId);
      const status = (await run.describe()).status.name;
      const outcome = status === 'COMPLETED' ? ((await run.result()) as ScheduledOutcome) : undefined;
      const summary = outcome?.ran ? outcome.summary : undefined;
      return {
        workflowId: started.workflowId,
        scheduledAt: action.scheduledAt,
        status,
        outcome: outcome ? (outcome.ran ? 'ran' : 'stood aside') : undefined,
        summary: summary && { predicted: summary.predicted, failed: summary.failed, alreadyDone: summary.alreadyDone, objectsSeen: summary.objectsSeen },
      };
    }),
  );
  return {
    scheduleId,
    pipeline: String(description.memo?.pipeline ?? ''),
    spec: describeSpec(description),
    overlap: description.policies.overlap ?? 'SKIP',
    paused: description.state.paused,
    note: description.state.note ?? '',
    nextActionTimes: description.info.nextActionTimes.slice(0, 5),
    recentRuns,
  };
}

/** The spec as the user wrote it; the server keeps cron only in its structured form. */
function specText(request: ScheduleRequest): string {
  return [
    request.cron !== undefined ? `cron "${request.cron}"` : `every ${request.every}`,
    request.timezone && `timezone ${request.timezone}`,
    request.jitter && `jitter ${request.jitter}`,
    request.catchupWindow && `catch-up window ${request.catchupWindow}`,
  ]
    .filter(Boolean)
    .join(', ');
}

function describeSpec(description: ScheduleDescription): string {
  const written = description.action.type === 'startWorkflow' ? description.action.memo?.objinferScheduleSpec : undefined;
  if (typeof written === 'string') return written;
  const { spec } = description;
  const parts: string[] = [];
  for (const interval of spec.intervals ?? []) parts.push(`every ${interval.every}`);
  for (const calendar of spec.calendars ?? []) parts.push(`calendar ${JSON.stringify(calendar)}`);
  if (spec.timezone) parts.push(`timezone ${spec.timezone}`);
  return parts.join('; ') || '(no spec)';
}

export async function listSchedules(client: Client): Promise<{ scheduleId: string; paused: boolean; next?: Date }[]> {
  const out: { scheduleId: string; paused: boolean; next?: Date }[] = [];
  for await (const schedule of client.schedule.list()) {
    if (!Ids.isObjinfer(schedule.scheduleId)) continue;
    out.push({ scheduleId: schedule.scheduleId, paused: schedule.state.paused, next: schedule.info.nextActionTimes[0] });
  }
  return out;
}

/**
 * Deletes the schedule and waits (up to `settleMs`) until the listing no longer shows it: the
 * list comes from the server's visibility store, which lags a delete, and a `delete` followed by
 * `list` that still names the schedule reads as a delete that did not happen.
 */
export async function deleteSchedule(client: Client, scheduleId: string, settleMs = 10_000): Promise<{ listed: boolean }> {
  await client.schedule.getHandle(scheduleId).delete();
  const deadline = Date.now() + settleMs;
  for (;;) {
    const listed = (await listSchedules(client)).some((s) => s.scheduleId === scheduleId);
    if (!listed || Date.now() >= deadline) return { listed };
    await sleep(200);
  }
}

export { ScheduleNotFoundError };

/** The server's refusal of a spec (the SDK raises INVALID_ARGUMENT as a TypeError), named by flag. */
function asSpecError(error: unknown, request: ScheduleRequest): unknown {
  if (!(error instanceof TypeError) && !/invalid/i.test((error as Error)?.message ?? '')) return error;
  const field = request.cron !== undefined ? '--cron' : '--every';
  return new ScheduleSpecError(field, `the server refused the schedule: ${(error as Error).message}`);
}
