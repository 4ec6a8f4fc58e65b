/**
 * `objinfer watch`: start (or attach to) the pipeline's watch, run a worker here unless told
 * not to, and print a line per micro-batch until Ctrl-C, which stops this process and not the
 * watch: it goes on on the server for whichever worker polls its task queue.
 */
import { CancelledFailure, TerminatedFailure, WorkflowFailedError, type Client } from '@temporalio/client';
import { startWatch } from '../../client';
import { loadConfig, type RunSpec } from '../../config';
import { formatDuration } from '../../format';
import { workflowUiUrl } from '../../temporal/connection';
import { watchProgressQuery, type WatchProgress } from '../../workflows/contract';
import type { WatchFlags } from '../commands/pipeline';
import { Exit, Interrupted } from '../common';
import { withTemporal } from '../connect';
import { render } from '../output';
import { checkModelFirst, onSignals, whileWorking } from '../run';

/** How often the watch is asked how far it got. */
const POLL_MS = 1000;

export async function watch(options: WatchFlags): Promise<void> {
  const spec = loadConfig(options.config, {}, { checkFiles: options.worker });
  if (options.worker) for (const warning of await checkModelFirst(spec)) console.error(`objinfer: warning: ${warning}`);
  await withTemporal(async ({ client, target, searchAttributes }) =>
    whileWorking(options.worker, target, spec, async (stop) => {
      const started = await startWatch(client, spec, { searchAttributes });
      const url = workflowUiUrl(target, started.workflowId);
      console.error(
        `${started.attached ? 'attached to the' : 'started the'} watch of ${spec.name} (workflow ${started.workflowId})${url ? `\n  see it: ${url}` : ''}\n` +
          `  stop it: objinfer cancel ${started.workflowId}`,
      );
      if (started.specDiffers)
        console.error(`objinfer: warning: the watch goes on with the config it was started with (${started.specDiffers.slice(0, 3).join('; ')})`);
      if (options.detach) return;
      const interrupted = onSignals((received) => {
        console.error(`\n${received}: stopped following the watch; it goes on on the server${options.worker ? ' (for a worker: `objinfer worker`)' : ''}`);
        stop.abort(new Interrupted(received, started.workflowId, spec.name));
      });
      try {
        await follow(client, spec, started.workflowId, options.output, stop.signal);
      } finally {
        interrupted.dispose();
      }
    }),
  );
}

/** Prints each finished micro-batch until the watch ends (cancelled, failed) or `signal` aborts. */
async function follow(client: Client, spec: RunSpec, workflowId: string, format: WatchFlags['output'], signal: AbortSignal): Promise<void> {
  const handle = client.workflow.getHandle(workflowId);
  const ended = handle.result().then(
    () => ({ text: 'ended', exit: Exit.ok as number }),
    (error: unknown) => {
      const cause = error instanceof WorkflowFailedError ? error.cause : undefined;
      if (cause instanceof CancelledFailure || cause instanceof TerminatedFailure) return { text: 'was stopped', exit: Exit.cancelled as number };
      return { text: `failed: ${innermost(error).message}`, exit: Exit.failed as number };
    },
  );
  let shown = -1;
  for (;;) {
    const outcome = await Promise.race([ended, sleep(POLL_MS, signal).then(() => undefined)]);
    if (signal.aborted) throw signal.reason;
    if (outcome) {
      console.error(`objinfer: the watch of ${spec.name} ${outcome.text}`);
      process.exitCode = outcome.exit;
      return;
    }
    const progress = await handle.query(watchProgressQuery).catch(() => undefined); // no worker yet: asked again
    if (!progress || progress.microBatches === shown) continue;
    if (shown >= 0 || progress.microBatches > 0) print(progress, format);
    shown = progress.microBatches;
  }
}

function innermost(error: unknown): Error {
  let current = error as Error;
  while (current.cause instanceof Error) current = current.cause;
  return current;
}

function print(p: WatchProgress, format: WatchFlags['output']): void {
  if (format !== 'table') {
    process.stdout.write(
      render(
        [{ ...p, last: undefined, ...(p.last ? { lastRun: p.last.workflowId, lastPredicted: p.last.predicted, lastFailed: p.last.failed } : {}) }],
        format,
      ),
    );
    return;
  }
  const last = p.last
    ? `${p.last.predicted} predicted, ${p.last.failed} failed, ${p.last.alreadyDone} already done in ${formatDuration(p.last.durationMs)}`
    : 'nothing yet';
  console.log(`micro-batch ${p.microBatches}: ${last} (in all ${p.predicted} predicted, ${p.failed} failed; ${p.pendingChanges} changes waiting)`);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
  });
}
