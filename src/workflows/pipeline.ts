/**
 * inferencePipeline: the manual procedure as a durable process.
 * preflight -> provision -> plan -> infer (sliding window of batches) -> summary.
 * Deterministic: all I/O is in activities, and history holds counts, never URIs or pixels.
 */
import {
  ActivityCancellationType,
  ApplicationFailure,
  continueAsNew,
  log,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
  type ActivityFunctionWithOptions,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { PipelineActivities } from '../activities';
import type { BatchPlan, BatchResult, StepOutcome } from '../backends/backend';
import type { PipelineConfig } from '../config';
import { formatDuration, parseDuration } from '../duration';
import { addLabelCounts, capBatches } from './limits';
import { ErrorType, NON_RETRYABLE_ERROR_TYPES } from '../errors';
import {
  progressQuery,
  SearchAttributes,
  type PipelineInput,
  type PipelineProgress,
  type PipelineSummary,
  type ResumeState,
  type Stage,
} from './contract';

function activitiesFor(config: PipelineConfig) {
  const ms = (text: string) => parseDuration(text) ?? 0;
  const retry = { initialInterval: 1000, backoffCoefficient: 2, maximumInterval: 30_000, nonRetryableErrorTypes: NON_RETRYABLE_ERROR_TYPES };
  // Every step heartbeats, so a step on a worker that died is retried after this, not after 5 minutes.
  const heartbeatTimeout = ms(config.batch.heartbeatTimeout);
  const provisioning: ActivityOptions = { startToCloseTimeout: '5m', heartbeatTimeout, retry: { ...retry, maximumAttempts: 10 } };
  // Steps that read through the connection wait out IAM propagation, up to the configured bound.
  const throughConnection: ActivityOptions = {
    startToCloseTimeout: '5m',
    heartbeatTimeout,
    scheduleToCloseTimeout: ms(config.iam.propagationTimeout),
    retry: { ...retry, backoffCoefficient: 1.5, maximumInterval: 20_000 },
  };
  const batches: ActivityOptions = {
    startToCloseTimeout: '30m',
    heartbeatTimeout,
    // A cancelled run ends only when its batches have stopped: nothing writes after it.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: { ...retry, maximumInterval: 60_000 },
  };
  const optionsFor = (name: keyof PipelineActivities): ActivityOptions =>
    name === 'predictBatch' ? batches : name === 'ensureObjectTable' || name === 'describeModel' ? throughConnection : provisioning;
  const proxies = proxyActivities<PipelineActivities>(provisioning);
  /** Runs one activity with its retry policy and a summary the UI shows next to it. */
  return <K extends keyof PipelineActivities>(
    name: K,
    summary: string,
    ...args: Parameters<PipelineActivities[K]>
  ): Promise<Awaited<ReturnType<PipelineActivities[K]>>> =>
    (proxies[name] as ActivityFunctionWithOptions<PipelineActivities[K]>).executeWithOptions({ ...optionsFor(name), summary }, args);
}

export async function inferencePipeline(input: PipelineInput): Promise<PipelineSummary> {
  const run = new PipelineRun(input);
  setHandler(progressQuery, () => run.progress());
  const state = input.resume ?? (await run.prepare());
  return run.infer(state);
}

class PipelineRun {
  private readonly step: ReturnType<typeof activitiesFor>;
  private stage: Stage = 'preflight';
  private plan?: BatchPlan;
  private batchesDone = 0;
  private predicted = 0;
  private failed = 0;
  private readonly startedAt: number;
  private inferStartedAt?: number;

  constructor(private readonly input: PipelineInput) {
    this.step = activitiesFor(input.config);
    this.startedAt = input.resume?.startedAt ?? Date.now();
  }

  private get config(): PipelineConfig {
    return this.input.config;
  }

  /** preflight, provision and plan: every step idempotent, so a re-run skips what is there. */
  async prepare(): Promise<ResumeState> {
    const { config, step } = this;
    this.enter('preflight');
    const { warnings } = await step('preflight', 'preflight: check config and permissions', config);

    this.enter('provision');
    const provisioned: StepOutcome[] = [];
    const record = <T extends StepOutcome | StepOutcome[]>(outcome: T): T => {
      provisioned.push(...(Array.isArray(outcome) ? outcome : [outcome]));
      return outcome;
    };
    record(await step('ensureDataset', `provision: dataset ${config.dataset}`, config));
    if (config.reservation) record(await step('ensureReservation', `provision: reservation ${config.reservation.name}`, config));
    const connection = record(await step('ensureConnection', `provision: connection ${config.connection}`, config));
    record(await step('ensureBucket', `provision: bucket ${config.bucket}`, config));
    record(await step('grantObjectViewer', 'provision: grant roles/storage.objectViewer', config, connection.serviceAccount));
    const artifact = record(await step('uploadModel', `provision: upload model ${config.model.name}`, config));
    record(await this.waitingOutIam('object table', () => step('ensureObjectTable', `provision: object table ${config.objectTable}`, config)));
    record(await step('ensureModel', `provision: model ${config.model.name} (version ${artifact.version})`, config, artifact));
    const model = await this.waitingOutIam('describe model', () => step('describeModel', `provision: describe model ${config.model.name}`, config, artifact));
    record(await step('ensureResultTables', `provision: tables ${config.results.table}, ${config.results.errorsTable}`, config, model));
    log.info('provisioned', { steps: provisioned.map((s) => `${s.step}: ${s.action}`) });

    this.enter('plan');
    const plan = capBatches(await step('planBatches', 'plan: count pending images', config, artifact.version), warnings);
    if (plan.objectsSeen === 0) {
      warnings.push(
        `sourceUris matched no objects (${config.sourceUris.join(', ')}): nothing to predict; check the pattern ` +
          '(`*` matches any run of characters, "/" included)',
      );
    }
    warnings.forEach((w) => log.warn(w));
    return {
      startedAt: this.startedAt, inferStartedAt: Date.now(), provisioned, warnings, artifact, model, plan,
      nextBatch: 0, predicted: 0, failed: 0, labelCounts: {},
    };
  }

  /** Runs the batches with at most `batch.concurrency` in flight; continues as new when asked. */
  async infer(state: ResumeState): Promise<PipelineSummary> {
    const { config, step } = this;
    const { plan, model } = state;
    this.plan = plan;
    this.batchesDone = state.nextBatch;
    this.predicted = state.predicted;
    this.failed = state.failed;
    this.inferStartedAt = state.inferStartedAt;
    const labelCounts = { ...state.labelCounts };
    this.enter('infer');
    const runId = workflowInfo().firstExecutionRunId;

    const inFlight = new Map<number, Promise<void>>();
    let next = state.nextBatch;
    let stopLaunching = false;
    const launch = (batchIndex: number) => {
      const request = { modelVersion: plan.modelVersion, model, batchIndex, batchCount: plan.batchCount, runId };
      const done = step('predictBatch', `infer: batch ${batchIndex + 1}/${plan.batchCount}`, config, request).then((result: BatchResult) => {
        inFlight.delete(batchIndex);
        this.batchesDone++;
        this.predicted += result.predicted;
        this.failed += result.failed;
        addLabelCounts(labelCounts, result.labelCounts);
        this.reportProgress();
      });
      inFlight.set(batchIndex, done);
    };

    while (next < plan.batchCount || inFlight.size > 0) {
      while (!stopLaunching && inFlight.size < config.batch.concurrency && next < plan.batchCount) launch(next++);
      await Promise.race(inFlight.values());
      if (workflowInfo().continueAsNewSuggested) stopLaunching = true;
      if (stopLaunching && inFlight.size === 0 && next < plan.batchCount) {
        // Drained: every batch below `next` is done, so the next run resumes from there.
        log.info('continuing as new', { nextBatch: next, of: plan.batchCount });
        await continueAsNew<typeof inferencePipeline>({
          ...this.input,
          resume: { ...state, nextBatch: next, predicted: this.predicted, failed: this.failed, labelCounts },
        });
      }
    }

    this.enter('done');
    const summary: PipelineSummary = {
      pipeline: config.name,
      workflowId: workflowInfo().workflowId,
      runId,
      modelVersion: plan.modelVersion,
      objectsSeen: plan.objectsSeen,
      predicted: this.predicted,
      alreadyDone: plan.alreadyDone,
      failed: this.failed,
      batches: plan.batchCount,
      labelCounts,
      provisioned: state.provisioned,
      warnings: state.warnings,
      resultsTable: `${config.dataset}.${config.results.table}`,
      errorsTable: `${config.dataset}.${config.results.errorsTable}`,
      durationMs: Date.now() - this.startedAt,
      inferDurationMs: Date.now() - state.inferStartedAt,
    };
    setCurrentDetails(
      `**done**: ${summary.predicted} predicted, ${summary.failed} failed, ${summary.alreadyDone} already done ` +
        `(model version ${summary.modelVersion})`,
    );
    return summary;
  }

  /**
   * Runs a step that reads through the connection. Its retries wait out IAM propagation;
   * when the bound runs out, the failure says so instead of showing a bare timeout.
   */
  private async waitingOutIam<T>(step: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      const pending = findFailure(error, ErrorType.IamPropagationPending);
      if (pending) {
        throw ApplicationFailure.create({
          type: ErrorType.IamPropagationTimeout,
          nonRetryable: true,
          message:
            `${step}: IAM permissions did not propagate within ${formatDuration(parseDuration(this.config.iam.propagationTimeout) ?? 0)} ` +
            `(last error: ${pending.message}). Check the grant of roles/storage.objectViewer to the connection's ` +
            `service account, or raise iam.propagationTimeout.`,
        });
      }
      throw error;
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
    setCurrentDetails(
      `**${p.stage}**: batches ${p.batchesDone}/${p.batchesTotal}, images ${p.imagesDone}/${p.imagesTotal}, ` +
        `failures ${p.imagesFailed}${eta}`,
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
      pipeline: this.config.name,
      stage: this.stage,
      batchesDone: this.batchesDone,
      batchesTotal: this.plan?.batchCount ?? 0,
      imagesDone,
      imagesTotal,
      imagesFailed: this.failed,
      imagesAlreadyDone: this.plan?.alreadyDone ?? 0,
      startedAt: new Date(this.startedAt).toISOString(),
      etaSeconds,
    };
  }
}

/** Walks a failure's causes for an ApplicationFailure of the given type. */
function findFailure(error: unknown, type: string): ApplicationFailure | undefined {
  let current: unknown = error;
  while (current instanceof Error) {
    if (current instanceof ApplicationFailure && current.type === type) return current;
    current = current.cause;
  }
  return undefined;
}
