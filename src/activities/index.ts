/**
 * Activities: one per step of the procedure, each a thin call into the Backend port.
 * They turn backend errors into ApplicationFailures whose type the workflow's retry
 * policies name, and report progress through heartbeats.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { BackendFactory, BatchRequest, ModelArtifact, ModelDescription } from '../backends/backend';
import type { PipelineConfig } from '../config';
import { ObjinferError } from '../errors';

/**
 * Runs a step while heartbeating, so a worker that dies mid-step is noticed within the
 * heartbeat timeout (not the 5-minute start-to-close bound) and the step retried elsewhere.
 */
async function classified<T>(work: (heartbeat: (details: unknown) => void) => Promise<T>): Promise<T> {
  const context = Context.current();
  let last: unknown;
  const heartbeat = (details: unknown) => {
    last = details;
    context.heartbeat(details);
  };
  // Repeats the last details: a retry reads them (e.g. the BigQuery job to re-attach to).
  const timeout = context.info.heartbeatTimeoutMs;
  const beat = timeout ? setInterval(() => context.heartbeat(last), Math.max(100, timeout / 3)) : undefined;
  try {
    return await work(heartbeat);
  } catch (error) {
    if (error instanceof ObjinferError) {
      throw ApplicationFailure.create({ type: error.type, message: error.message, nonRetryable: !error.retryable });
    }
    throw error;
  } finally {
    clearInterval(beat);
  }
}

export function createActivities(backendFor: BackendFactory) {
  return {
    preflight: (config: PipelineConfig) => classified(() => backendFor(config).preflight()),
    ensureDataset: (config: PipelineConfig) => classified(() => backendFor(config).ensureDataset()),
    ensureReservation: (config: PipelineConfig) => classified(() => backendFor(config).ensureReservation()),
    ensureConnection: (config: PipelineConfig) => classified(() => backendFor(config).ensureConnection()),
    ensureBucket: (config: PipelineConfig) => classified(() => backendFor(config).ensureBucket()),
    grantObjectViewer: (config: PipelineConfig, serviceAccount: string) =>
      classified(() => backendFor(config).grantObjectViewer(serviceAccount)),
    uploadModel: (config: PipelineConfig) => classified(() => backendFor(config).uploadModel()),
    ensureObjectTable: (config: PipelineConfig) => classified(() => backendFor(config).ensureObjectTable()),
    ensureModel: (config: PipelineConfig, artifact: ModelArtifact) => classified(() => backendFor(config).ensureModel(artifact)),
    describeModel: (config: PipelineConfig, artifact: ModelArtifact) => classified(() => backendFor(config).describeModel(artifact)),
    ensureResultTables: (config: PipelineConfig, model: ModelDescription) =>
      classified(() => backendFor(config).ensureResultTables(model)),
    planBatches: (config: PipelineConfig, modelVersion: string) => classified(() => backendFor(config).planBatches(modelVersion)),
    predictBatch: (config: PipelineConfig, request: BatchRequest) =>
      classified((heartbeat) => {
        heartbeat({ imagesDone: 0 });
        // Heartbeats carry progress (or the job ID) and bring cancellation in; the signal stops the batch.
        return backendFor(config).predictBatch(request, heartbeat, Context.current().cancellationSignal);
      }),
    cleanup: (config: PipelineConfig, deleteData: boolean) => classified(() => backendFor(config).cleanup({ deleteData })),
  };
}

export type PipelineActivities = ReturnType<typeof createActivities>;
