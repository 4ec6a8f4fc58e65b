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

async function classified<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof ObjinferError) {
      throw ApplicationFailure.create({ type: error.type, message: error.message, nonRetryable: !error.retryable });
    }
    throw error;
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
      classified(() => {
        const context = Context.current();
        context.heartbeat({ imagesDone: 0 });
        // Heartbeats carry progress (or the job ID) and bring cancellation in; the signal stops the batch.
        return backendFor(config).predictBatch(request, (progress) => context.heartbeat(progress), context.cancellationSignal);
      }),
    cleanup: (config: PipelineConfig, deleteData: boolean) => classified(() => backendFor(config).cleanup({ deleteData })),
  };
}

export type PipelineActivities = ReturnType<typeof createActivities>;
