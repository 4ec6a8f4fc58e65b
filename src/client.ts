/**
 * The client API for scripts, and what the CLI is built on: start or attach to a
 * pipeline run, clean up after it, plan one; and, from ./runs and ./reads, watch it, read its
 * status and why it waits, cancel it, and read what it wrote.
 * Connect with `connectTemporal()` (TEMPORAL_ADDRESS / envconfig profiles, or a dev server).
 */
import { WorkflowExecutionAlreadyStartedError, type Client, type WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import type { PlannedCall } from './backends/port';
import { describeSpec, specKey, type RunSpec } from './config';
import { cleanupPipeline as cleanupWorkflow, inferencePipeline, watchPipeline } from './workflows';
import { Ids, SPEC_MEMO_KEY, type PipelineInput, type StepOutcome, type WatchInput } from './workflows/contract';
import { searchAttributesFor } from './workflows/searchAttributes';

export { connectTemporal, workflowUiUrl, type Connected } from './temporal/connection';
export { loadConfig, parseConfig, ConfigError, type RunSpec } from './config';
export { Ids, type PipelineProgress, type PipelineSummary, type WatchProgress } from './workflows/contract';
export type { ErrorRow, ResultFilter, ResultRow } from './backends/port';
export {
  cancelPipeline,
  controlPipeline,
  ControlRefused,
  failureMessage,
  getProgress,
  isTemporalUnavailable,
  newestRun,
  noWorkerWarning,
  NoSuchRun,
  pipelineStatus,
  stepsDoing,
  waitForResult,
  waitingReason,
  workersPolling,
  type CancelOutcome,
  type Pollers,
  type RunStatus,
  type WaitOptions,
} from './runs';
export {
  createSchedule,
  updateSchedule,
  describeSchedule,
  triggerSchedule,
  backfillSchedule,
  deleteSchedule,
  listSchedules,
  ScheduleSpecError,
  type ScheduleRequest,
  type ScheduleReport,
} from './schedules';

export interface StartedPipeline {
  handle: WorkflowHandleWithFirstExecutionRunId<typeof inferencePipeline>;
  workflowId: string;
  /** True when the pipeline was already running (started by anyone, a schedule too) and this call attached to it. */
  attached: boolean;
  /**
   * When attached to a run started with another spec: the settings that differ, as
   * "field: theirs -> ours". That run goes on with its own spec, not this one.
   */
  specDiffers?: string[];
}

/**
 * Starts `inferencePipeline` for the spec, or attaches to the run of the same pipeline
 * that is going, whoever started it (one workflow ID per pipeline, conflict policy USE_EXISTING).
 */
export async function startPipeline(
  client: Client,
  spec: RunSpec,
  options: { searchAttributes?: boolean; /** A budget for a run this call starts (not one it attaches to). */ maxImages?: number } = {},
): Promise<StartedPipeline> {
  const workflowId = Ids.pipeline(spec.name);
  const budget = options.maxImages !== undefined ? { maxImages: options.maxImages } : {};
  const input: PipelineInput = { spec, specKey: specKey(spec), searchAttributes: options.searchAttributes ?? false, ...budget };
  return startOrAttach(client, spec, inferencePipeline, input, {
    workflowId,
    searchAttributes: options.searchAttributes,
    staticSummary: `objinfer ${spec.name}: ${spec.model.name} over ${spec.sourceUris.join(', ')}`,
  });
}

export interface StartedWatch {
  handle: WorkflowHandleWithFirstExecutionRunId<typeof watchPipeline>;
  workflowId: string;
  /** True when the pipeline was being watched already and this call attached to that watch. */
  attached: boolean;
  /** As for a run: the settings that differ from the running watch's, which goes on with its own. */
  specDiffers?: string[];
}

/**
 * Starts `watchPipeline` for the spec (`objinfer watch`), or attaches to the pipeline's watch
 * that is going: one watch per pipeline (its own workflow ID, beside the pipeline's runs).
 */
export async function startWatch(client: Client, spec: RunSpec, options: { searchAttributes?: boolean } = {}): Promise<StartedWatch> {
  const workflowId = Ids.watch(spec.name);
  const input: WatchInput = { spec, specKey: specKey(spec), searchAttributes: options.searchAttributes ?? false };
  return startOrAttach(client, spec, watchPipeline, input, {
    workflowId,
    searchAttributes: options.searchAttributes,
    staticSummary: `objinfer watch ${spec.name}: ${spec.model.name} over ${spec.sourceUris.join(', ')}`,
  });
}

/** Starts `workflow` under its pipeline's workflow ID, or attaches to the one running there (conflict policy USE_EXISTING), saying whether its spec differs. */
async function startOrAttach<W extends typeof inferencePipeline | typeof watchPipeline>(
  client: Client,
  spec: RunSpec,
  workflow: W,
  input: Parameters<W>[0],
  options: { workflowId: string; searchAttributes?: boolean; staticSummary: string },
): Promise<{ handle: WorkflowHandleWithFirstExecutionRunId<W>; workflowId: string; attached: boolean; specDiffers?: string[] }> {
  const { workflowId } = options;
  const running = await runningSpec(client, workflowId);
  const handle = await client.workflow.start<W>(workflow, {
    taskQueue: spec.temporal.taskQueue,
    workflowId,
    args: [input] as Parameters<W>,
    workflowIdConflictPolicy: 'USE_EXISTING',
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    memo: { config: describeSpec(spec), [SPEC_MEMO_KEY]: spec },
    staticSummary: options.staticSummary,
    staticDetails: Object.entries(describeSpec(spec))
      .map(([k, v]) => `**${k}**: ${v}`)
      .join('\n'),
    typedSearchAttributes: options.searchAttributes ? searchAttributesFor(spec) : undefined,
  });
  const differs = running && running !== 'unknown' && specKey(running) !== input.specKey ? specDifferences(running, spec) : undefined;
  return { handle, workflowId, attached: running !== undefined, ...(differs?.length ? { specDiffers: differs } : {}) };
}

/** The spec of the pipeline's running run ('unknown' when it holds none), or undefined when none runs. */
async function runningSpec(client: Client, workflowId: string): Promise<RunSpec | 'unknown' | undefined> {
  const description = await client.workflow
    .getHandle(workflowId)
    .describe()
    .catch(() => undefined);
  if (description?.status.name !== 'RUNNING') return undefined;
  return (description.memo?.[SPEC_MEMO_KEY] as RunSpec | undefined) ?? 'unknown';
}

/** Settings that differ between two specs, leaf by leaf, as "field: theirs -> ours". */
export function specDifferences(theirs: unknown, ours: unknown, path = ''): string[] {
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isObject(theirs) && isObject(ours)) {
    const keys = [...new Set([...Object.keys(theirs), ...Object.keys(ours)])].sort();
    return keys.flatMap((key) => specDifferences(theirs[key], ours[key], path ? `${path}.${key}` : key));
  }
  const show = (v: unknown) => (v === undefined ? '(unset)' : JSON.stringify(v));
  return JSON.stringify(theirs) === JSON.stringify(ours) ? [] : [`${path}: ${show(theirs)} -> ${show(ours)}`];
}

/**
 * Runs the cleanup workflow for the pipeline and returns what it removed or kept.
 * `deleteData` also removes results and errors, and the dataset, connection and bucket
 * when objinfer created them.
 */
export async function cleanupPipeline(client: Client, spec: RunSpec, options: { deleteData: boolean }): Promise<StepOutcome[]> {
  const workflowId = Ids.cleanup(spec.name);
  const start = () =>
    client.workflow.execute(cleanupWorkflow, {
      taskQueue: spec.temporal.taskQueue,
      workflowId,
      args: [{ spec, specKey: specKey(spec), deleteData: options.deleteData }],
      workflowIdConflictPolicy: 'USE_EXISTING',
      memo: { [SPEC_MEMO_KEY]: spec },
      staticSummary: `objinfer cleanup of ${spec.name}${options.deleteData ? ' (with data)' : ''}`,
    });
  try {
    return await start();
  } catch (error) {
    if (error instanceof WorkflowExecutionAlreadyStartedError) return client.workflow.getHandle(workflowId).result();
    throw error;
  }
}

/** Newest first; readable while a worker writes. */
export { readErrors, readResults } from './reads';

/** Every statement and API call a run would make, in order, changing nothing. */
export async function describePlan(spec: RunSpec): Promise<PlannedCall[]> {
  const { createBackend } = await import('./backends'); // both backends and their engines: only `plan` needs them here
  return createBackend(spec).describePlan();
}
