/**
 * The client API for scripts, and what the CLI is built on: start or attach to a
 * pipeline run, watch it (riding out Temporal outages), read its status and why it waits,
 * cancel it, clean up after it, and read what it wrote.
 * Connect with `connectTemporal()` (TEMPORAL_ADDRESS / envconfig profiles, or a dev server).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  WorkflowNotFoundError,
  type Client,
  type WorkflowExecutionDescription,
  type WorkflowHandleWithFirstExecutionRunId,
} from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { openResults } from './backends';
import type { ErrorRow, PlannedCall, ResultFilter, ResultRow } from './backends/port';
import { createBackend } from './backends';
import { describeSpec, specKey, type RunSpec } from './config';
import { cleanupPipeline as cleanupWorkflow, inferencePipeline } from './workflows';
import {
  Ids,
  progressQuery,
  SPEC_MEMO_KEY,
  type BatchProgress,
  type PipelineInput,
  type PipelineProgress,
  type PipelineSummary,
  type StepOutcome,
} from './workflows/contract';
import { searchAttributesFor } from './workflows/searchAttributes';

export { connectTemporal, workflowUiUrl, type Connected } from './temporal/connection';
export { loadConfig, parseConfig, ConfigError, type RunSpec } from './config';
export { Ids, type PipelineProgress, type PipelineSummary } from './workflows/contract';
export type { ErrorRow, ResultFilter, ResultRow } from './backends/port';
export {
  createSchedule,
  updateSchedule,
  describeSchedule,
  triggerSchedule,
  backfillSchedule,
  deleteSchedule,
  listSchedules,
  ScheduleSpecError,
  type ScheduleRequest,
  type ScheduleReport,
} from './schedules';

export interface StartedPipeline {
  handle: WorkflowHandleWithFirstExecutionRunId<typeof inferencePipeline>;
  workflowId: string;
  /** True when the pipeline was already running (started by anyone, a schedule too) and this call attached to it. */
  attached: boolean;
  /**
   * When attached to a run started with another spec: the settings that differ, as
   * "field: theirs -> ours". That run goes on with its own spec, not this one.
   */
  specDiffers?: string[];
}

/** A run the user named that does not exist. */
export class NoSuchRun extends Error {
  override readonly name = 'NoSuchRun';
}

/**
 * Starts `inferencePipeline` for the spec, or attaches to the run of the same pipeline
 * that is going, whoever started it (one workflow ID per pipeline, conflict policy USE_EXISTING).
 */
export async function startPipeline(client: Client, spec: RunSpec, options: { searchAttributes?: boolean } = {}): Promise<StartedPipeline> {
  const workflowId = Ids.pipeline(spec.name);
  const input: PipelineInput = { spec, specKey: specKey(spec), searchAttributes: options.searchAttributes ?? false };
  const running = await runningSpec(client, workflowId);
  const attached = running !== undefined;
  const handle = await client.workflow.start(inferencePipeline, {
    taskQueue: spec.temporal.taskQueue,
    workflowId,
    args: [input],
    workflowIdConflictPolicy: 'USE_EXISTING',
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    memo: { config: describeSpec(spec), [SPEC_MEMO_KEY]: spec },
    staticSummary: `objinfer ${spec.name}: ${spec.model.name} over ${spec.sourceUris.join(', ')}`,
    staticDetails: Object.entries(describeSpec(spec))
      .map(([k, v]) => `**${k}**: ${v}`)
      .join('\n'),
    typedSearchAttributes: options.searchAttributes ? searchAttributesFor(spec) : undefined,
  });
  const differs = running && running !== 'unknown' && specKey(running) !== input.specKey ? specDifferences(running, spec) : undefined;
  return { handle, workflowId, attached, ...(differs?.length ? { specDiffers: differs } : {}) };
}

/** The spec of the pipeline's running run ('unknown' when it holds none), or undefined when none runs. */
async function runningSpec(client: Client, workflowId: string): Promise<RunSpec | 'unknown' | undefined> {
  const description = await client.workflow
    .getHandle(workflowId)
    .describe()
    .catch(() => undefined);
  if (description?.status.name !== 'RUNNING') return undefined;
  return (description.memo?.[SPEC_MEMO_KEY] as RunSpec | undefined) ?? 'unknown';
}

/** Settings that differ between two specs, leaf by leaf, as "field: theirs -> ours". */
export function specDifferences(theirs: unknown, ours: unknown, path = ''): string[] {
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isObject(theirs) && isObject(ours)) {
    const keys = [...new Set([...Object.keys(theirs), ...Object.keys(ours)])].sort();
    return keys.flatMap((key) => specDifferences(theirs[key], ours[key], path ? `${path}.${key}` : key));
  }
  const show = (v: unknown) => (v === undefined ? '(unset)' : JSON.stringify(v));
  return JSON.stringify(theirs) === JSON.stringify(ours) ? [] : [`${path}: ${show(theirs)} -> ${show(ours)}`];
}

export interface RunStatus {
  workflowId: string;
  runId: string;
  status: string;
  startTime: Date;
  closeTime?: Date;
  description: WorkflowExecutionDescription;
}

/** The newest run of a pipeline (by name or workflow ID), whoever started it. */
export async function pipelineStatus(client: Client, nameOrId: string): Promise<RunStatus> {
  const workflowId = Ids.pipelineFromUserInput(nameOrId);
  try {
    const description = await client.workflow.getHandle(workflowId).describe();
    return {
      workflowId,
      runId: description.runId,
      status: description.status.name,
      startTime: description.startTime,
      closeTime: description.closeTime,
      description,
    };
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) throw new NoSuchRun(`no run of pipeline ${nameOrId} (workflow ID ${workflowId})`);
    throw error;
  }
}

/** The newest objinfer run of any pipeline. */
export async function newestRun(client: Client): Promise<string | undefined> {
  for await (const execution of client.workflow.list({ query: `WorkflowType = '${inferencePipeline.name}'` })) return execution.workflowId;
  return undefined;
}

export async function getProgress(client: Client, workflowId: string): Promise<PipelineProgress> {
  return client.workflow.getHandle(workflowId).query(progressQuery);
}

/**
 * Why the run is not moving, when it waits: a step's own report (a warehouse locked by
 * another process, IAM propagating) or the failure its retries are working through.
 */
export async function waitingReason(client: Client, workflowId: string, known?: WorkflowExecutionDescription): Promise<string | undefined> {
  const description = known ?? (await client.workflow.getHandle(workflowId).describe());
  const stuck = description.raw.pendingWorkflowTask;
  if (stuck && (stuck.attempt ?? 1) > 1)
    return `the workflow task keeps failing (attempt ${stuck.attempt}): ${await lastWorkflowTaskFailure(client, workflowId, description.runId)}`;
  for (const activity of description.raw.pendingActivities ?? []) {
    const details = activity.heartbeatDetails?.payloads?.[0];
    const progress = details ? (defaultPayloadConverter.fromPayload(details) as BatchProgress | undefined) : undefined;
    const step = activity.activityType?.name ?? 'a step';
    if (progress?.waiting) return `${step}: ${progress.waiting}`;
    const failure = activity.lastFailure?.message;
    if ((activity.attempt ?? 1) > 1 && failure) return `${step} retrying (attempt ${activity.attempt}): ${failure.split('\n')[0]}`;
  }
  return undefined;
}

/** What the run's long steps say they are doing (a big bucket's listing), one per step, or undefined. */
export async function stepsDoing(client: Client, workflowId: string, known?: WorkflowExecutionDescription): Promise<string | undefined> {
  const description = known ?? (await client.workflow.getHandle(workflowId).describe());
  const doing = (description.raw.pendingActivities ?? []).flatMap((activity) => {
    const details = activity.heartbeatDetails?.payloads?.[0];
    const progress = details ? (defaultPayloadConverter.fromPayload(details) as BatchProgress | undefined) : undefined;
    return progress?.doing ? [`${activity.activityType?.name ?? 'a step'}: ${progress.doing}`] : [];
  });
  return doing.length > 0 ? doing.join('; ') : undefined;
}

/** The message of the newest WorkflowTaskFailed event (a bug, or workflow code a worker cannot run). */
async function lastWorkflowTaskFailure(client: Client, workflowId: string, runId: string): Promise<string> {
  const { history } = await client.workflowService.getWorkflowExecutionHistoryReverse({
    namespace: client.options.namespace,
    execution: { workflowId, runId },
    maximumPageSize: 20,
  });
  const failed = history?.events?.find((e) => e.workflowTaskFailedEventAttributes)?.workflowTaskFailedEventAttributes;
  return failed?.failure?.message?.split('\n')[0] ?? 'see the run in the Temporal UI';
}

/** The gRPC failures of a server that is away for a while (restarting, network down). */
export function isTemporalUnavailable(error: unknown): boolean {
  const text = `${(error as Error)?.message ?? ''} ${String((error as { cause?: unknown })?.cause ?? '')}`;
  return /\b14 UNAVAILABLE\b|\bUNAVAILABLE\b|ECONNREFUSED|Channel has been shut down|\b4 DEADLINE_EXCEEDED\b|Connection dropped|transport error/i.test(text);
}

export interface WaitOptions {
  onProgress?: (progress: PipelineProgress) => void;
  /** Why the run waits, every few seconds while it does (undefined when it moves again). */
  onWaiting?: (reason: string | undefined) => void;
  /** What its long steps say they are doing (a big bucket's listing), every few seconds (undefined when none says). */
  onDoing?: (what: string | undefined) => void;
  /** Temporal is unreachable: what failed and when the next try is. */
  onReconnecting?: (reason: string, retryInMs: number) => void;
  intervalMs?: number;
  /** How long to keep trying while Temporal is unreachable (default 10 minutes). */
  reconnectForMs?: number;
  signal?: AbortSignal;
}

/**
 * Waits for the run to finish, reporting progress while it goes. Follows continue-as-new
 * to the final run. While Temporal is unreachable it waits and tries again with backoff
 * (the run goes on on the server). Throws WorkflowFailedError when the run failed.
 */
export async function waitForResult(client: Client, workflowId: string, options: WaitOptions = {}): Promise<PipelineSummary> {
  const handle = client.workflow.getHandle<typeof inferencePipeline>(workflowId);
  const stop = new AbortController();
  // The caller's signal ends the wait at once (the long poll for the result cannot be aborted).
  const aborted = new Promise<never>((_, reject) => {
    const onAbort = () => reject(options.signal?.reason ?? new Error('stopped waiting'));
    if (options.signal?.aborted) onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
  });
  aborted.catch(() => undefined);
  options.signal?.addEventListener('abort', () => stop.abort());
  const watching = options.onProgress || options.onWaiting || options.onDoing ? watch(client, workflowId, options, stop.signal) : Promise.resolve();
  try {
    let delay = 1000;
    let unreachableSince: number | undefined;
    for (;;) {
      try {
        // The long poll is cancelled with the wait, so nothing is left in flight when the caller moves on.
        return await Promise.race([client.withAbortSignal(stop.signal, () => handle.result()), aborted]);
      } catch (error) {
        if (!isTemporalUnavailable(error) || stop.signal.aborted) throw error;
        unreachableSince ??= Date.now();
        if (Date.now() - unreachableSince > (options.reconnectForMs ?? 600_000)) throw error;
        options.onReconnecting?.((error as Error).message.split('\n')[0]!, delay);
        await sleep(delay, undefined, { signal: stop.signal }).catch(() => undefined);
        delay = Math.min(delay * 2, 15_000);
      }
    }
  } finally {
    stop.abort();
    await watching;
  }
}

/**
 * Progress is a query, which the worker has to answer; the answer can only change when the
 * run's history does (the workflow's state and clock move with it). So each poll, once a
 * second, describes the run (the server alone answers) and queries only when the history has
 * grown. Polls take CPU from the run they watch (docs/benchmarks.md: a query every 500 ms
 * cost the watching process 50-66 ms of CPU over a 200-image run; now 25-37 and 3 queries).
 */
async function watch(client: Client, workflowId: string, options: WaitOptions, signal: AbortSignal): Promise<void> {
  let polls = 0;
  let queriedAt: { runId: string; historyLength: number } | undefined;
  while (!signal.aborted) {
    try {
      const description = await client.workflow.getHandle(workflowId).describe();
      const moved = queriedAt?.runId !== description.runId || queriedAt.historyLength !== description.historyLength;
      if (options.onProgress && moved) {
        options.onProgress(await getProgress(client, workflowId));
        queriedAt = { runId: description.runId, historyLength: description.historyLength };
      }
      if (polls++ % 2 === 0) {
        if (options.onWaiting) options.onWaiting(await waitingReason(client, workflowId, description));
        if (options.onDoing) options.onDoing(await stepsDoing(client, workflowId, description));
      }
    } catch {
      // Between runs (continue-as-new), before the first workflow task, or Temporal away: the wait loop reports that.
    }
    await sleep(options.intervalMs ?? 1000, undefined, { signal }).catch(() => undefined);
  }
}

export type CancelOutcome = 'cancel requested' | 'not running';

/** Asks a running pipeline to stop (its batches stop, its BigQuery jobs are cancelled). */
export async function cancelPipeline(client: Client, nameOrId: string): Promise<{ workflowId: string; outcome: CancelOutcome }> {
  const { workflowId, status } = await pipelineStatus(client, nameOrId);
  if (status !== 'RUNNING') return { workflowId, outcome: 'not running' };
  await client.workflow.getHandle(workflowId).cancel();
  return { workflowId, outcome: 'cancel requested' };
}

/**
 * Runs the cleanup workflow for the pipeline and returns what it removed or kept.
 * `deleteData` also removes results and errors, and the dataset, connection and bucket
 * when objinfer created them.
 */
export async function cleanupPipeline(client: Client, spec: RunSpec, options: { deleteData: boolean }): Promise<StepOutcome[]> {
  const workflowId = Ids.cleanup(spec.name);
  const start = () =>
    client.workflow.execute(cleanupWorkflow, {
      taskQueue: spec.temporal.taskQueue,
      workflowId,
      args: [{ spec, specKey: specKey(spec), deleteData: options.deleteData }],
      workflowIdConflictPolicy: 'USE_EXISTING',
      memo: { [SPEC_MEMO_KEY]: spec },
      staticSummary: `objinfer cleanup of ${spec.name}${options.deleteData ? ' (with data)' : ''}`,
    });
  try {
    return await start();
  } catch (error) {
    if (error instanceof WorkflowExecutionAlreadyStartedError) return client.workflow.getHandle(workflowId).result();
    throw error;
  }
}

export interface Pollers {
  /** Workers that polled the task queue for workflow tasks in the last two minutes. */
  workflowPollers: number;
  activityPollers: number;
}

/** Whether any worker polls the task queue: a run or a schedule's slot only moves when one does. */
export async function workersPolling(client: Client, taskQueue: string): Promise<Pollers> {
  const { enums } = temporal.api;
  const recent = (pollers: { lastAccessTime?: { seconds?: unknown } | null }[] | null | undefined) =>
    (pollers ?? []).filter((p) => Date.now() / 1000 - Number(p.lastAccessTime?.seconds ?? 0) < 120).length;
  const ask = (taskQueueType: temporal.api.enums.v1.TaskQueueType) =>
    client.workflowService.describeTaskQueue({
      namespace: client.options.namespace,
      taskQueue: { name: taskQueue, kind: enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
      taskQueueType,
    });
  const [workflows, activities] = await Promise.all([
    ask(enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW),
    ask(enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY),
  ]);
  return { workflowPollers: recent(workflows.pollers), activityPollers: recent(activities.pollers) };
}

/** What to tell someone whose run or schedule will wait for a worker, or undefined when one polls. */
export async function noWorkerWarning(client: Client, taskQueue: string): Promise<string | undefined> {
  const pollers = await workersPolling(client, taskQueue).catch(() => undefined);
  if (!pollers || (pollers.workflowPollers > 0 && pollers.activityPollers > 0)) return undefined;
  return (
    `no worker polls task queue ${taskQueue}: runs wait (stage "-") until one does. ` +
    `Start one with \`objinfer worker --task-queue ${taskQueue}\` and keep it running (docs/operations.md "Keep a worker running": systemd or compose)`
  );
}

/** Newest first; readable while a worker writes. */
export function readResults(spec: RunSpec, filter: ResultFilter = {}): Promise<ResultRow[]> {
  return openResults(spec).readResults(filter);
}

export function readErrors(spec: RunSpec, filter: ResultFilter = {}): Promise<ErrorRow[]> {
  return openResults(spec).readErrors(filter);
}

/** Every statement and API call a run would make, in order, changing nothing. */
export function describePlan(spec: RunSpec): Promise<PlannedCall[]> {
  return createBackend(spec).describePlan();
}

/** The root cause of a failed run, as one readable line. */
export function failureMessage(error: unknown): string {
  let current: unknown = error instanceof WorkflowFailedError ? error.cause : error;
  let message = (current as Error)?.message ?? String(error);
  while (current instanceof Error && current.cause instanceof Error) {
    current = current.cause;
    if (current instanceof Error && current.message) message = current.message;
  }
  return message;
}
