/**
 * watchPipeline (`objinfer watch`): a long-running pipeline fed by events. It provisions once,
 * keeps a watcher running (an activity that records changed objects in the object table and
 * signals how many), and predicts each micro-batch of changes as a run of inferencePipeline,
 * so a micro-batch has the run's prediction version, exactly-once rows and error isolation.
 * History holds counts only, never URIs; it continues as new to stay small.
 */
import {
  ActivityCancellationType,
  CancellationScope,
  ChildWorkflowFailure,
  condition,
  continueAsNew,
  executeChild,
  isCancellation,
  log,
  ParentClosePolicy,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  upsertMemo,
  workflowInfo,
} from '@temporalio/workflow';
import type { PipelineActivities } from '../activities';
import type { RunSpec } from '../config';
import { watchSettings } from '../watchSettings';
import { NON_RETRYABLE_ERROR_TYPES } from '../errors';
import {
  Ids,
  objectsChangedSignal,
  SPEC_MEMO_KEY,
  watchProgressQuery,
  type PipelineRef,
  type PipelineSummary,
  type Prepared,
  type WatchCarried,
  type WatchInput,
  type WatchProgress,
} from './contract';
import { inferencePipeline } from './pipeline';
import { preflightAndProvision } from './prepare';
import { searchAttributesFor } from './searchAttributes';
import { stepsFor } from './steps';

/** Micro-batches one run of a watch holds before it continues as new (or sooner, when the server suggests it). */
export const MICRO_BATCHES_PER_RUN = 200;

/** Micro-batch runs that may fail one after another (each a minute apart) before the watch fails. */
const FAILURES_IN_A_ROW = 5;

export async function watchPipeline(input: WatchInput): Promise<WatchProgress> {
  if (!workflowInfo().memo?.[SPEC_MEMO_KEY]) upsertMemo({ [SPEC_MEMO_KEY]: input.spec });
  const watch = new Watch(input);
  setHandler(watchProgressQuery, () => watch.progress());
  setHandler(objectsChangedSignal, ({ changed }) => watch.announce(changed));
  return watch.run();
}

class Watch {
  private readonly ref: PipelineRef;
  private state: WatchProgress['state'] = 'provisioning';
  private readonly carried: Omit<WatchCarried, 'prepared'>;
  private last?: WatchProgress['last'];
  private batchesThisRun = 0;

  constructor(private readonly input: WatchInput) {
    this.ref = { name: input.spec.name, specKey: input.specKey };
    const { prepared: _prepared, ...carried } = input.carried ?? { startedAt: Date.now(), microBatches: 0, predicted: 0, failed: 0, pendingChanges: 0 };
    this.carried = carried;
  }

  private get spec(): RunSpec {
    return this.input.spec;
  }

  announce(changed: number): void {
    this.carried.pendingChanges += Math.max(1, changed);
    this.show();
  }

  async run(): Promise<WatchProgress> {
    const prepared = this.input.carried?.prepared ?? (await this.prepare());
    // The first micro-batch predicts whatever provisioning's listing found pending.
    if (!this.input.carried) this.carried.pendingChanges++;
    const watcher = new CancellationScope();
    const watching = watcher.run(() => this.keepWatching());
    watching.catch(() => undefined); // raced below
    let failuresInARow = 0;
    for (;;) {
      this.state = 'watching';
      this.show();
      await Promise.race([condition(() => this.carried.pendingChanges > 0), watching]);
      const announced = this.carried.pendingChanges;
      this.carried.pendingChanges = 0;
      this.state = 'predicting';
      this.show();
      try {
        await this.microBatch(prepared);
        failuresInARow = 0;
      } catch (error) {
        if (isCancellation(error) || ++failuresInARow >= FAILURES_IN_A_ROW) throw error;
        const why = error instanceof ChildWorkflowFailure && error.cause ? error.cause.message : String(error);
        log.warn('a micro-batch run failed; trying again in a minute', { why, failuresInARow });
        this.carried.pendingChanges += announced;
        await sleep('1m');
        continue;
      }
      if (workflowInfo().continueAsNewSuggested || this.batchesThisRun >= MICRO_BATCHES_PER_RUN) {
        // Not waited for: a cancel reaches an activity with its next heartbeat, up to 80 % of the
        // heartbeat timeout later (24 s by default), and micro-batches would stall meanwhile. Until
        // then it records what it sees and signals the next run, whose own watcher lists everything.
        watcher.cancel();
        await continueAsNew<typeof watchPipeline>({ ...this.input, carried: { ...this.carried, prepared } });
      }
    }
  }

  /** preflight and provision, once for every micro-batch of this watch. */
  private async prepare(): Promise<Prepared> {
    const steps = stepsFor(this.spec);
    const { artifact, model, warnings } = await preflightAndProvision({ spec: this.spec, ref: this.ref, steps, enter: () => this.show() });
    warnings.forEach((w) => log.warn(w));
    return { artifact, model, warnings };
  }

  /**
   * One watcher after another: each lists the whole source when it starts (the reconcile),
   * then follows events until `watch.reconcileEvery` is over. A dead worker's watcher is
   * retried elsewhere and lists again, so what changed while none watched is still found.
   */
  private async keepWatching(): Promise<never> {
    const settings = watchSettings(this.spec);
    const { watchSource } = proxyActivities<PipelineActivities>({
      startToCloseTimeout: settings.reconcileEveryMs + 30 * 60_000, // its first listing may take long
      heartbeatTimeout: this.spec.batch.heartbeatTimeoutMs,
      // A stopped watch ends at once; its watcher stops at its next heartbeat (see run()).
      cancellationType: ActivityCancellationType.TRY_CANCEL,
      retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', nonRetryableErrorTypes: NON_RETRYABLE_ERROR_TYPES },
    });
    for (;;) {
      const seen = await watchSource.executeWithOptions({ summary: `watch ${this.spec.sourceUris.join(', ')}` }, [this.ref, settings]);
      log.info('watcher ended; the next one lists the source again', { ...seen });
    }
  }

  private async microBatch(prepared: Prepared): Promise<void> {
    const number = this.carried.microBatches + 1;
    const { spec, input } = this;
    const summary: PipelineSummary = await executeChild(inferencePipeline, {
      workflowId: Ids.microBatch(spec.name, number),
      args: [{ spec, specKey: input.specKey, searchAttributes: input.searchAttributes, prepared }],
      parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
      memo: { [SPEC_MEMO_KEY]: spec },
      typedSearchAttributes: input.searchAttributes ? searchAttributesFor(spec) : undefined,
      staticSummary: `objinfer ${spec.name}: micro-batch ${number} of ${workflowInfo().workflowId}`,
    });
    this.carried.microBatches = number;
    this.batchesThisRun++;
    this.carried.predicted += summary.predicted;
    this.carried.failed += summary.failed;
    this.last = {
      workflowId: summary.workflowId,
      predicted: summary.predicted,
      failed: summary.failed,
      alreadyDone: summary.alreadyDone,
      durationMs: summary.durationMs,
    };
  }

  progress(): WatchProgress {
    const { microBatches, predicted, failed, pendingChanges, startedAt } = this.carried;
    return {
      pipeline: this.spec.name,
      state: this.state,
      startedAt: new Date(startedAt).toISOString(),
      microBatches,
      predicted,
      failed,
      pendingChanges,
      ...(this.last ? { last: this.last } : {}),
    };
  }

  private show(): void {
    const p = this.progress();
    const last = p.last ? `; last: ${p.last.predicted} predicted, ${p.last.failed} failed` : '';
    setCurrentDetails(
      `**${p.state}** ${this.spec.sourceUris.join(', ')}: ${p.microBatches} micro-batches, ${p.predicted} predicted, ${p.failed} failed, ` +
        `${p.pendingChanges} changes waiting${last}. Stop it: \`objinfer cancel ${workflowInfo().workflowId}\``,
    );
  }
}
