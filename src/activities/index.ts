/**
 * Activities: one per step of the procedure, each a thin call into the backend ports.
 * They turn backend errors into ApplicationFailures whose type the workflow's retry
 * policies name, heartbeat while they work, and pass on why a step is waiting or what a
 * long one is doing.
 */
import { Context, log } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { Backend } from '../backends/port';
import { listeningForWaits } from '../backends/waiting';
import { MAX_FAILURE_MESSAGE, ObjinferError, truncateMessage } from '../errors';
import type { WatchSettings } from '../config';
import {
  objectsChangedSignal,
  type BatchProgress,
  type BatchRequest,
  type ModelArtifact,
  type ModelDescription,
  type PipelineRef,
} from '../workflows/contract';
import { BackendRegistry } from './backends';

export { BackendRegistry } from './backends';

/**
 * Runs a step while heartbeating, so a worker that dies mid-step is noticed within the
 * heartbeat timeout (not the start-to-close bound) and the step retried elsewhere.
 */
async function classified<T>(work: (heartbeat: (details: BatchProgress) => void) => Promise<T>): Promise<T> {
  const context = Context.current();
  let last: BatchProgress = {};
  const heartbeat = (details: BatchProgress) => {
    last = details;
    context.heartbeat(details);
  };
  // Repeats the last details: a retry reads them (e.g. the BigQuery job to re-attach to).
  const timeout = context.info.heartbeatTimeoutMs;
  const beat = timeout ? setInterval(() => context.heartbeat(last), Math.max(100, timeout / 3)) : undefined;
  try {
    return await listeningForWaits(
      (news) => {
        // The newest news replaces the last: a step that reports what it does no longer waits.
        const { waiting: _waiting, doing: _doing, ...rest } = last;
        heartbeat('waitOver' in news ? rest : { ...rest, ...news });
      },
      () => work(heartbeat),
    );
  } catch (error) {
    if (error instanceof ObjinferError) {
      if (error.message.length > MAX_FAILURE_MESSAGE) log.warn('failure message cut for history', { message: error.message });
      throw ApplicationFailure.create({ type: error.type, message: truncateMessage(error.message), nonRetryable: !error.retryable });
    }
    if (error instanceof Error && !(error instanceof ApplicationFailure) && error.message.length > MAX_FAILURE_MESSAGE) {
      log.warn('failure message cut for history', { message: error.message });
      throw ApplicationFailure.create({ type: error.name, message: truncateMessage(error.message) });
    }
    throw error;
  } finally {
    clearInterval(beat);
  }
}

/**
 * Signals the watch this activity belongs to that `changed` objects are in the object table.
 * While the server cannot be reached the signal is tried again each second: the changes are
 * recorded already, so a watch that never hears of them still finds them at its next listing.
 */
async function tellWorkflow(changed: number, cancelled: AbortSignal): Promise<void> {
  const { info, client } = Context.current();
  const workflowId = info.workflowExecution?.workflowId;
  if (!workflowId) throw new Error('objinfer activities run only inside its workflows');
  for (;;) {
    try {
      return await client.workflow.getHandle(workflowId).signal(objectsChangedSignal, { changed });
    } catch (error) {
      if (cancelled.aborted) return; // the watch is ending or continuing as new: its next watcher lists everything
      log.warn('could not tell the watch what changed; trying again in 1s', { error: String(error) });
      await new Promise((resume) => setTimeout(resume, 1000));
    }
  }
}

export function createActivities(backends: BackendRegistry = new BackendRegistry()) {
  const on = <T>(ref: PipelineRef, work: (backend: Backend) => Promise<T>): Promise<T> => classified(async () => work(await backends.get(ref)));
  return {
    preflight: (ref: PipelineRef) => on(ref, (b) => b.preflight()),
    ensureDataset: (ref: PipelineRef) => on(ref, (b) => b.ensureDataset()),
    ensureReservation: (ref: PipelineRef) => on(ref, (b) => b.ensureReservation()),
    ensureConnection: (ref: PipelineRef) => on(ref, (b) => b.ensureConnection()),
    ensureBucket: (ref: PipelineRef) => on(ref, (b) => b.ensureBucket()),
    grantObjectViewer: (ref: PipelineRef, serviceAccount: string) => on(ref, (b) => b.grantObjectViewer(serviceAccount)),
    uploadModel: (ref: PipelineRef) => on(ref, (b) => b.uploadModel()),
    ensureObjectTable: (ref: PipelineRef) =>
      on(ref, (b) => {
        const { workflowExecution, activityId } = Context.current().info;
        return b.ensureObjectTable(workflowExecution ? `${workflowExecution.runId}:${activityId}` : undefined);
      }),
    ensureModel: (ref: PipelineRef, artifact: ModelArtifact) => on(ref, (b) => b.ensureModel(artifact)),
    describeModel: (ref: PipelineRef, artifact: ModelArtifact) => on(ref, (b) => b.describeModel(artifact)),
    ensureResultTables: (ref: PipelineRef, model: ModelDescription) => on(ref, (b) => b.ensureResultTables(model)),
    planBatches: (ref: PipelineRef, modelVersion: string, runId: string) => on(ref, (b) => b.planBatches(modelVersion, runId)),
    predictBatch: (ref: PipelineRef, request: BatchRequest) =>
      classified(async (heartbeat) => {
        heartbeat({ imagesDone: 0 });
        const backend = await backends.get(ref);
        // Heartbeats carry progress (or the job ID) and bring cancellation in; the signal stops the batch.
        return backend.predictBatch(request, heartbeat, Context.current().cancellationSignal);
      }),
    recordUnprocessable: (ref: PipelineRef, request: BatchRequest, reason: string) => on(ref, (b) => b.recordUnprocessable(request, reason)),
    cleanup: (ref: PipelineRef, deleteData: boolean) => on(ref, (b) => b.cleanup({ deleteData })),
    /** A watch's watcher: runs until cancelled or `settings.reconcileEveryMs` is over, telling its workflow what changed. */
    watchSource: (ref: PipelineRef, settings: WatchSettings) =>
      on(ref, (b) => {
        const { cancellationSignal } = Context.current();
        return b.watchSource(settings, (changed) => tellWorkflow(changed, cancellationSignal), cancellationSignal);
      }),
  };
}

export type PipelineActivities = ReturnType<typeof createActivities>;
