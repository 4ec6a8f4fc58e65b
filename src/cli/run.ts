/**
 * `objinfer run` (and the demo): start or attach to a pipeline run, with a worker in this
 * process unless told otherwise, and watch it to the end. Ctrl-C or SIGTERM stops watching
 * (and this process's worker) at once and says how to re-attach: the run goes on on the
 * server. A Temporal outage is waited out with backoff, saying why.
 */
import { ConfigError, type RunSpec } from '../config';
import { ObjinferError, ErrorType } from '../errors';
import { noWorkerWarning, startPipeline, waitForResult } from '../client';
import { connectWorker, workflowUiUrl, type TargetOptions, type TemporalTarget } from '../temporal/connection';
import { Ids, type PipelineSummary } from '../workflows/contract';
import { Exit, Interrupted } from './common';
import { withTemporal } from './connect';
import { installLogging } from './logging';
import { ProgressView } from './progress';

/**
 * Reads the model and labels here before anything is created: a labels file of the wrong
 * length, an input size the model contradicts, an output that is not [batch, classes]
 * stop the run with exit 2; doubtful settings are warned about.
 */
export async function checkModelFirst(spec: RunSpec): Promise<string[]> {
  try {
    const { inspectModel } = await import('../backends/inspect');
    return (await inspectModel(spec, (what) => console.error(`objinfer: ${what}`))).warnings;
  } catch (error) {
    if (error instanceof ObjinferError && [ErrorType.ModelShapeMismatch, ErrorType.InvalidConfig, ErrorType.ModelInvalid].includes(error.type as never)) {
      const field = /model\.(labels|inputSize|output)/.exec(error.message)?.[0] ?? 'model.source';
      throw new ConfigError({ field, problem: error.message });
    }
    throw error;
  }
}

export interface RunOptions {
  worker: boolean;
  /** A budget of images for the run this starts. */
  maxImages?: number;
  target?: TargetOptions;
  /** Say what happens, as it happens (stderr). */
  quiet?: boolean;
}

/** Starts (or attaches to) the pipeline, runs a worker in this process unless told not to, and waits. */
export async function runPipeline(spec: RunSpec, options: RunOptions): Promise<PipelineSummary> {
  if (options.worker) for (const warning of await checkModelFirst(spec)) console.error(`objinfer: warning: ${warning}`);
  return withTemporal(
    async (temporal) => {
      const { client, target } = temporal;
      return whileWorking(options.worker, target, spec, async (signal) => {
        const view = new ProgressView();
        const workflowId = Ids.pipeline(spec.name);
        const interrupted = onSignals((received) => {
          view.stop();
          console.error(
            `\n${received}: stopped watching. The run goes on on the Temporal server (workflow ${workflowId}).\n` +
              `  re-attach: objinfer run --config <file>   watch: objinfer status ${spec.name} --watch   stop it: objinfer cancel ${spec.name}` +
              (options.worker ? '\n  (this process ran its worker: the run waits for a worker, e.g. `objinfer worker`, or a re-attached run)' : ''),
          );
          signal.abort(new Interrupted(received, workflowId, spec.name));
        });
        try {
          const started = await startPipeline(client, spec, { searchAttributes: temporal.searchAttributes, maxImages: options.maxImages });
          const url = workflowUiUrl(target, started.workflowId);
          console.error(
            `${started.attached ? 'attached to the running' : 'started'} pipeline ${spec.name} (workflow ${started.workflowId})${url ? `\n  watch it: ${url}` : ''}`,
          );
          if (started.attached && options.maxImages !== undefined) {
            console.error(
              `objinfer: warning: --max-images applies to a run this command starts; to give the running one a budget: objinfer set ${spec.name} --max-images ${options.maxImages}`,
            );
          }
          if (started.specDiffers) {
            const shown = started.specDiffers.slice(0, 5).join('; ') + (started.specDiffers.length > 5 ? `; and ${started.specDiffers.length - 5} more` : '');
            console.error(
              `objinfer: warning: the running pipeline ${spec.name} was started with another config, and goes on with it, not yours (${shown}). ` +
                `To run yours: wait for it to end, or stop it (objinfer cancel ${spec.name}), then run again`,
            );
          }
          if (!options.worker) {
            const warning = await noWorkerWarning(client, spec.temporal.taskQueue);
            console.error(`  (no worker in this process${warning ? `; ${warning}` : ': `objinfer worker` must be running'})`);
          }
          signal.signal.throwIfAborted();
          const summary = await waitForResult(client, started.workflowId, {
            onProgress: (p) => view.update(p),
            onWaiting: (why) => view.waiting(why),
            onDoing: (what) => view.doing(what),
            onReconnecting: (why, retryInMs) =>
              view.note(
                `Temporal at ${target.address} is unreachable (${why}); trying again in ${Math.round(retryInMs / 1000)}s (the run goes on on the server)`,
              ),
            signal: signal.signal,
          });
          view.complete(summary);
          return summary;
        } catch (error) {
          if (signal.signal.aborted) throw signal.signal.reason;
          throw error;
        } finally {
          interrupted.dispose();
          view.stop();
        }
      });
    },
    'detached',
    options.target,
  );
}

/** SIGINT/SIGTERM call `handler` once; a second signal exits at once. */
export function onSignals(handler: (signal: NodeJS.Signals) => void): { dispose(): void } {
  let seen = false;
  const listener = (signal: NodeJS.Signals) => {
    if (seen) process.exit(signal === 'SIGINT' ? Exit.interrupted : Exit.terminated);
    seen = true;
    handler(signal);
  };
  process.on('SIGINT', listener);
  process.on('SIGTERM', listener);
  return {
    dispose: () => {
      process.off('SIGINT', listener);
      process.off('SIGTERM', listener);
    },
  };
}

/**
 * Runs `work` while a worker in this process polls the spec's task queue (when `withWorker`),
 * then stops the worker and closes its connection, in that order, before returning. Without a
 * worker, neither the worker nor the backends are loaded.
 */
export async function whileWorking<T>(withWorker: boolean, target: TemporalTarget, spec: RunSpec, work: (stop: AbortController) => Promise<T>): Promise<T> {
  const stop = new AbortController();
  if (!withWorker) return work(stop);
  const [{ BackendRegistry }, { createWorker }] = await Promise.all([import('../activities'), import('../worker')]);
  const backends = new BackendRegistry();
  backends.remember(spec);
  const taskQueue = spec.temporal.taskQueue;
  await installLogging();
  const connection = await connectWorker(target);
  try {
    const worker = await createWorker({ connection, namespace: target.namespace, taskQueue, backends, shutdownForceTime: '3s' });
    return await worker.runUntil(work(stop)).catch((error: unknown) => {
      // A shutdown cut short after Ctrl-C: the interrupt is what the user should hear about.
      if (stop.signal.aborted) throw stop.signal.reason;
      throw error;
    });
  } finally {
    await backends.close();
    await connection.close();
  }
}
