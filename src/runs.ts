/**
 * Runs as Temporal sees them: a pipeline's status, its progress and why it waits, its result
 * (riding out Temporal outages), cancelling it, and who polls its queue. What `status`, `list`
 * and `cancel` load: Temporal's client, not the config parser or the backends.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkflowFailedError, WorkflowNotFoundError, WorkflowUpdateFailedError, type Client, type WorkflowExecutionDescription } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { inferencePipeline } from './workflows';
import {
  controlUpdate,
  Ids,
  progressQuery,
  type BatchProgress,
  type PipelineProgress,
  type PipelineSummary,
  type RunControlChange,
  type RunControlState,
} from './workflows/contract';

/** A run the user named that does not exist. */
export class NoSuchRun extends Error {
  override readonly name = 'NoSuchRun';
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

/** A control change the running pipeline did not take: the run is not running, or the change was refused (nothing changed). */
export class ControlRefused extends Error {
  override readonly name = 'ControlRefused';
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
  }
}

/**
 * Pauses, resumes or re-sizes a running pipeline through its control update and answers the
 * state the pipeline took. The update is validated by the workflow before it is accepted, so a
 * refused change leaves nothing in history; it needs a worker to run the workflow's task.
 */
export async function controlPipeline(client: Client, nameOrId: string, change: RunControlChange): Promise<{ workflowId: string; state: RunControlState }> {
  const { workflowId, status, description } = await pipelineStatus(client, nameOrId);
  if (status !== 'RUNNING')
    throw new ControlRefused(`${workflowId} is ${status.toLowerCase()}, not running: nothing to change`, 'start a run with `objinfer run`');
  const noWorker = await noWorkerWarning(client, description.taskQueue);
  if (noWorker) throw new ControlRefused(`${workflowId} cannot take the change now: ${noWorker}`, 'nothing was changed');
  try {
    const state = await client.workflow.getHandle(workflowId).executeUpdate(controlUpdate, { args: [change] });
    return { workflowId, state };
  } catch (error) {
    if (error instanceof WorkflowUpdateFailedError) {
      throw new ControlRefused(`${workflowId} refused the change: ${(error.cause as Error | undefined)?.message ?? error.message}`, 'nothing was changed');
    }
    throw error;
  }
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
