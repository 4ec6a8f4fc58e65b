/**
 * The objinfer worker: polls a task queue and runs the workflows and their activities.
 * Scale out by starting more workers on the same task queue.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Runtime, Worker, type NativeConnection, type WorkerOptions } from '@temporalio/worker';
import { BackendRegistry, createActivities } from './activities';
import { turboJpeg } from './images/jpeg';

export interface WorkerSettings {
  connection: NativeConnection;
  namespace?: string;
  taskQueue: string;
  /** Backends per pipeline; pass one to share it or to supply a backend factory (tests). */
  backends?: BackendRegistry;
  /** Batches one worker runs at once; each batch already uses every core for inference. */
  maxConcurrentActivities?: number;
  /**
   * Stop waiting for a graceful shutdown after this long (the CLI's in-process worker, on
   * Ctrl-C): unfinished steps are retried by the next worker, so nothing is lost.
   */
  shutdownForceTime?: string;
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
  if (!turboJpeg()) {
    Runtime.instance().logger.warn(
      "no libjpeg-turbo 3 library found (@julusian/jpeg-turbo ships one for Linux; elsewhere set OBJINFER_TURBOJPEG to libturbojpeg): JPEGs are decoded by sharp, whose pixels differ from TensorFlow's and BigQuery's by a few levels",
    );
  }
  return Worker.create({
    connection: settings.connection,
    namespace: settings.namespace ?? 'default',
    taskQueue: settings.taskQueue,
    ...workflowSource(),
    activities: createActivities(settings.backends ?? new BackendRegistry()),
    maxConcurrentActivityTaskExecutions: settings.maxConcurrentActivities ?? 8,
    ...(settings.shutdownForceTime ? { shutdownForceTime: settings.shutdownForceTime as `${number}s` } : {}),
  });
}
