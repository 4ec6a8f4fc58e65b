/**
 * The objinfer worker: polls a task queue and runs inferencePipeline and its
 * activities. Scale out by starting more workers on the same task queue.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker, type NativeConnection, type WorkerOptions } from '@temporalio/worker';
import { createActivities } from './activities';
import { backendFor as defaultBackendFor, type BackendFactory } from './backends';

export interface WorkerSettings {
  connection: NativeConnection;
  namespace?: string;
  taskQueue: string;
  backendFor?: BackendFactory;
  /** Batches one worker runs at once; each batch already uses every core for inference. */
  maxConcurrentActivities?: number;
}

/**
 * Prebuilt workflow code: OBJINFER_WORKFLOW_BUNDLE, else the bundle `npm run build`
 * writes next to this file, else bundle from source (slower start).
 */
function workflowSource(): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> {
  const bundle = process.env.OBJINFER_WORKFLOW_BUNDLE ?? join(__dirname, 'workflow-bundle.js');
  if (existsSync(bundle)) return { workflowBundle: { codePath: bundle } };
  return { workflowsPath: require.resolve('./workflows') };
}

export async function createWorker(settings: WorkerSettings): Promise<Worker> {
  return Worker.create({
    connection: settings.connection,
    namespace: settings.namespace ?? 'default',
    taskQueue: settings.taskQueue,
    ...workflowSource(),
    activities: createActivities(settings.backendFor ?? defaultBackendFor),
    maxConcurrentActivityTaskExecutions: settings.maxConcurrentActivities ?? 8,
  });
}
