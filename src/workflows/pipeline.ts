/**
 * inferencePipeline: the manual procedure as a durable process.
 * preflight -> provision -> plan -> infer (sliding window of batches) -> summary.
 * Deterministic: all I/O is in activities, and history holds counts, never URIs or pixels.
 */
import {
  log,
  makeContinueAsNewFunc,
  patched,
  setCurrentDetails,
  setHandler,
  sleep,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { RunSpec } from '../config';
import { formatDuration } from '../format';
import {
  progressQuery,
  SearchAttributes,
  SPEC_MEMO_KEY,
  type BatchPlan,
  type BatchProgress,
  type BatchRequest,
  type BatchResult,
  type BatchSlice,
  type PipelineInput,
  type PipelineProgress,
  type PipelineRef,
  type PipelineSummary,
  type ResumeState,
  type Stage,
} from './contract';
import { RunControl } from './control';
import { addLabelCounts, capBatches, MAX_SPLIT_DEPTH } from './limits';
import { BATCH_ATTEMPTS, isRetryable, stepsFor, workerDeath } from './steps';
import { preflightAndProvision, type Provisioned } from './prepare';

/** The patch that made batches ranges of the pending table's ranks (BatchSlice.ranks). */
const RANK_SLICES = 'batch-rank-ranges';

/** Batch `index` of the plan: ranks [index * pending / count, (index + 1) * pending / count). */
function sliceOf(plan: BatchPlan, index: number, byRanks: boolean): BatchSlice {
  const slice: BatchSlice = { count: plan.batchCount, index };
  if (!byRanks) return slice;
  const edge = (i: number) => Math.floor((i * plan.pending) / plan.batchCount);
  return { ...slice, ranks: [edge(index), edge(index + 1)] };
}

export async function inferencePipeline(input: PipelineInput): Promise<PipelineSummary> {
  // Workers that have not seen this pipeline read its spec from here (see activities/backends.ts).
  if (!workflowInfo().memo?.[SPEC_MEMO_KEY]) upsertMemo({ [SPEC_MEMO_KEY]: input.spec });
  const run = new PipelineRun(input);
  setHandler(progressQuery, () => run.progress());
  run.listenForControl();
  const state = input.resume ?? (await run.prepare());
  return run.infer(state);
}

class PipelineRun {
  private readonly steps: ReturnType<typeof stepsFor>;
  private readonly ref: PipelineRef;
  private stage: Stage = 'preflight';
  private plan?: BatchPlan;
  private batchesDone = 0;
  private predicted = 0;
  private failed = 0;
  private readonly startedAt: number;
  private inferStartedAt?: number;
  private control?: RunControl;

  constructor(private readonly input: PipelineInput) {
    this.steps = stepsFor(input.spec);
    this.ref = { name: input.spec.name, specKey: input.specKey };
    this.startedAt = input.resume?.startedAt ?? Date.now();
  }

  private get spec(): RunSpec {
    return this.input.spec;
  }

  /** Pause, resume and concurrency through the control update (./control.ts); kept across continue-as-new. */
  listenForControl(): void {
    const budget = this.input.maxImages !== undefined ? { maxImages: this.input.maxImages } : {};
    const initial = this.input.resume?.control ?? { paused: false, concurrency: this.spec.batch.concurrency, ...budget };
    this.control = new RunControl(initial, (state) => {
      log.info('control changed', { ...state });
      this.reportProgress();
    });
  }

  private provisionAll(): Promise<Provisioned> {
    return preflightAndProvision({ spec: this.spec, ref: this.ref, steps: this.steps, enter: (stage) => this.enter(stage) });
  }

  /** preflight, provision and plan: every step idempotent, so a re-run skips what is there. */
  async prepare(): Promise<ResumeState> {
    // A watch's micro-batch was provisioned by the watch (./watch.ts).
    const { provisioned, warnings, artifact, model } = this.input.prepared
      ? { provisioned: [], ...this.input.prepared, warnings: [...this.input.prepared.warnings] }
      : await this.provisionAll();
    const { spec, ref } = this;
    const { provisioning } = this.steps;
    const summary = (text: string) => ({ summary: text });
    this.enter('plan');
    const plan = capBatches(
      await provisioning.planBatches.executeWithOptions(summary('plan: count pending images'), [ref, artifact.version, workflowInfo().firstExecutionRunId]),
      warnings,
    );
    if (plan.objectsSeen === 0) {
      warnings.push(
        `sourceUris matched no objects (${spec.sourceUris.join(', ')}): nothing to predict; check the pattern ` +
          '(`*` matches any run of characters, "/" included)',
      );
    }
    if (plan.failedBefore > 0) {
      warnings.push(
        `${plan.failedBefore} image(s) failed in earlier runs and were not retried; fix them and run with --retry-failed (objinfer results --errors lists them)`,
      );
    }
    warnings.forEach((w) => log.warn(w));
    return {
      startedAt: this.startedAt,
      inferStartedAt: Date.now(),
      provisioned,
      warnings,
      artifact,
      model,
      plan,
      // Decided once per run: one that began with hash slices keeps them after continuing as new.
      rankSlices: patched(RANK_SLICES),
      nextBatch: 0,
      predicted: 0,
      failed: 0,
      labelCounts: {},
    };
  }

  /** Runs the batches with at most `batch.concurrency` in flight; continues as new when asked. */
  async infer(state: ResumeState): Promise<PipelineSummary> {
    const { spec } = this;
    const { plan, model } = state;
    this.plan = plan;
    this.batchesDone = state.nextBatch;
    this.predicted = state.predicted;
    this.failed = state.failed;
    this.inferStartedAt = state.inferStartedAt;
    const labelCounts = { ...state.labelCounts };
    this.enter('infer');
    const runId = workflowInfo().firstExecutionRunId;

    const byRanks = state.rankSlices ?? false;
    const inFlight = new Map<number, Promise<void>>();
    let next = state.nextBatch;
    let stopLaunching = false;
    const launch = (index: number) => {
      const request: BatchRequest = { modelVersion: plan.modelVersion, model, slice: sliceOf(plan, index, byRanks), runId };
      const done = this.runSlice(request, `batch ${index + 1}/${plan.batchCount}`).then((result) => {
        inFlight.delete(index);
        this.batchesDone++;
        this.predicted += result.predicted;
        this.failed += result.failed;
        addLabelCounts(labelCounts, result.labelCounts);
        this.reportProgress();
      });
      inFlight.set(index, done);
    };

    const control = this.control!;
    const done = () => this.predicted + this.failed;
    while ((next < plan.batchCount && !control.spent(done())) || inFlight.size > 0) {
      while (!stopLaunching && !control.paused && !control.spent(done()) && inFlight.size < control.concurrency && next < plan.batchCount) launch(next++);
      // A batch ending, or a control change (resume, more at once), is what can let another start.
      await Promise.race([...inFlight.values(), control.changed]);
      if (workflowInfo().continueAsNewSuggested) stopLaunching = true;
      if (stopLaunching && inFlight.size === 0 && next < plan.batchCount) {
        // Drained: every batch below `next` is done, so the next run resumes from there.
        log.info('continuing as new', { nextBatch: next, of: plan.batchCount });
        const resume: ResumeState = { ...state, nextBatch: next, predicted: this.predicted, failed: this.failed, labelCounts, control: control.state };
        await makeContinueAsNewFunc<typeof inferencePipeline>({ memo: workflowInfo().memo })({ ...this.input, resume });
      }
    }

    this.enter('done');
    const summary: PipelineSummary = {
      pipeline: spec.name,
      workflowId: workflowInfo().workflowId,
      runId,
      modelVersion: plan.modelVersion,
      objectsSeen: plan.objectsSeen,
      predicted: this.predicted,
      alreadyDone: plan.alreadyDone,
      failedBefore: plan.failedBefore,
      failed: this.failed,
      batches: plan.batchCount,
      labelCounts,
      provisioned: state.provisioned,
      warnings: state.warnings,
      resultsTable: `${spec.dataset}.${spec.results.table}`,
      errorsTable: `${spec.dataset}.${spec.results.errorsTable}`,
      modelOutput: model.outputName,
      modelScores: model.scores,
      durationMs: Date.now() - this.startedAt,
      inferDurationMs: Date.now() - state.inferStartedAt,
      ...(next < plan.batchCount ? { stoppedAtBudget: { maxImages: control.state.maxImages!, leftPending: plan.pending - done() } } : {}),
    };
    setCurrentDetails(
      `**done**: ${summary.predicted} predicted, ${summary.failed} failed, ${summary.alreadyDone} already done ` +
        `(prediction version ${summary.modelVersion})`,
    );
    return summary;
  }

  /**
   * One batch, or a part of one. A batch that outlives its attempts because its worker
   * keeps dying (no heartbeat: a crash or a memory kill) is split by a second hash into
   * halves, each run on its own, until the object that kills it stands alone; that object
   * is recorded as failed and everything else is predicted. Other failures that a retry
   * may fix are retried after a pause; the rest fail the run.
   */
  private async runSlice(request: BatchRequest, label: string): Promise<BatchResult> {
    const { batches, provisioning } = this.steps;
    for (;;) {
      try {
        return await batches.predictBatch.executeWithOptions({ summary: `infer: ${label}` }, [this.ref, request]);
      } catch (error) {
        const death = workerDeath(error);
        if (!death) {
          if (isRetryable(error)) {
            log.warn('batch still failing after its attempts; trying again in a minute', { label, error: String((error as Error).message) });
            await sleep('1m');
            continue;
          }
          throw error;
        }
        const pending = (death.lastHeartbeatDetails as BatchProgress | undefined)?.pending;
        const depth = request.slice.split?.length ?? 0;
        if ((pending !== undefined && pending <= 1) || depth >= MAX_SPLIT_DEPTH) {
          const reason =
            `processing this object stopped the worker ${BATCH_ATTEMPTS} times in a row (${death.message || 'no heartbeat'}: ` +
            'a crash, a memory limit or a hang); it was set aside. Check it, then run with --retry-failed';
          log.warn('isolated an object that kills its worker', { label });
          return provisioning.recordUnprocessable.executeWithOptions({ summary: `infer: ${label}: set aside` }, [this.ref, request, reason]);
        }
        log.warn('batch keeps killing its worker; splitting it', { label, pending });
        const halves = [0, 1].map((bit) => ({ ...request, slice: { ...request.slice, split: [...(request.slice.split ?? []), bit] } }));
        const parts = await Promise.all(halves.map((half) => this.runSlice(half, `${label} part ${half.slice.split.join('')}`)));
        return parts.reduce(
          (sum, part) => {
            addLabelCounts(sum.labelCounts, part.labelCounts);
            return { predicted: sum.predicted + part.predicted, failed: sum.failed + part.failed, labelCounts: sum.labelCounts };
          },
          { predicted: 0, failed: 0, labelCounts: {} } as BatchResult,
        );
      }
    }
  }

  private enter(stage: Stage): void {
    this.stage = stage;
    log.info(`stage ${stage}`);
    if (this.input.searchAttributes) upsertSearchAttributes([{ key: SearchAttributes.stage, value: stage }]);
    this.reportProgress();
  }

  private reportProgress(): void {
    const p = this.progress();
    if (this.input.searchAttributes && p.stage !== 'preflight') {
      upsertSearchAttributes([{ key: SearchAttributes.imagesDone, value: p.imagesDone }]);
    }
    const eta = p.etaSeconds !== undefined ? `, about ${formatDuration(p.etaSeconds * 1000)} left` : '';
    const paused = p.control?.paused ? ` (**paused**${p.control.note ? `: ${p.control.note}` : ''}; \`objinfer resume\` to go on)` : '';
    setCurrentDetails(
      `**${p.stage}**: batches ${p.batchesDone}/${p.batchesTotal}, images ${p.imagesDone}/${p.imagesTotal}, failures ${p.imagesFailed}${eta}${paused}`,
    );
  }

  progress(): PipelineProgress {
    const imagesDone = this.predicted + this.failed;
    const imagesTotal = this.plan?.pending ?? 0;
    let etaSeconds: number | undefined;
    if (this.inferStartedAt !== undefined && imagesDone > 0 && imagesDone < imagesTotal) {
      const elapsed = (Date.now() - this.inferStartedAt) / 1000;
      etaSeconds = Math.round((elapsed / imagesDone) * (imagesTotal - imagesDone));
    }
    return {
      pipeline: this.spec.name,
      stage: this.stage,
      batchesDone: this.batchesDone,
      batchesTotal: this.plan?.batchCount ?? 0,
      imagesDone,
      imagesTotal,
      imagesFailed: this.failed,
      imagesAlreadyDone: this.plan?.alreadyDone ?? 0,
      startedAt: new Date(this.startedAt).toISOString(),
      etaSeconds,
      control: this.control?.state,
    };
  }
}
