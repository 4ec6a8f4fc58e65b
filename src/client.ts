/**
 * The client API for scripts (and the CLI, which is built on it): start or attach to a
 * pipeline run, read its progress, wait for its summary, cancel it.
 * Connect with `connectTemporal()` (TEMPORAL_ADDRESS / envconfig profiles, or a dev server).
 */
import { WorkflowFailedError, type Client, type WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { describeConfig, type PipelineConfig } from './config';
import {
  progressQuery,
  SearchAttributes,
  WORKFLOW_TYPE,
  workflowIdFor,
  type PipelineInput,
  type PipelineProgress,
  type PipelineSummary,
} from './workflows/contract';
import type { StepOutcome } from './backends/backend';
import type { cleanupPipeline as cleanupWorkflow, inferencePipeline } from './workflows';

export { connectTemporal, workflowUiUrl, type Connected } from './temporal/connection';
export { loadConfig, parseConfig, ConfigError, type PipelineConfig } from './config';
export { workflowIdFor, type PipelineProgress, type PipelineSummary } from './workflows/contract';
export {
  createSchedule,
  updateSchedule,
  describeSchedule,
  triggerSchedule,
  backfillSchedule,
  listSchedules,
  scheduleIdFor,
  ScheduleSpecError,
  type ScheduleRequest,
  type ScheduleReport,
} from './schedules';

export type PipelineHandle = WorkflowHandleWithFirstExecutionRunId<typeof inferencePipeline>;

export interface StartedPipeline {
  handle: PipelineHandle;
  workflowId: string;
  /** True when the pipeline was already running and this call attached to it. */
  attached: boolean;
}

/**
 * Starts `inferencePipeline` for the config, or attaches to the run of the same pipeline
 * that is still going (one workflow ID per pipeline name, conflict policy USE_EXISTING).
 */
export async function startPipeline(
  client: Client,
  config: PipelineConfig,
  options: { searchAttributes?: boolean } = {},
): Promise<StartedPipeline> {
  const workflowId = workflowIdFor(config.name);
  const running = await isRunning(client, workflowId);
  const input: PipelineInput = { config, searchAttributes: options.searchAttributes ?? false };
  const handle = await client.workflow.start<typeof inferencePipeline>(WORKFLOW_TYPE, {
    taskQueue: config.temporal.taskQueue,
    workflowId,
    args: [input],
    workflowIdConflictPolicy: 'USE_EXISTING',
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    memo: { config: describeConfig(config) },
    staticSummary: `objinfer ${config.name}: ${config.model.name} over ${config.sourceUris.join(', ')}`,
    staticDetails: Object.entries(describeConfig(config)).map(([k, v]) => `**${k}**: ${v}`).join('\n'),
    typedSearchAttributes: options.searchAttributes
      ? [
          { key: SearchAttributes.backend, value: config.backend },
          { key: SearchAttributes.dataset, value: `${config.project}.${config.dataset}` },
          { key: SearchAttributes.model, value: config.model.name },
          { key: SearchAttributes.stage, value: 'preflight' },
          { key: SearchAttributes.imagesDone, value: 0 },
        ]
      : undefined,
  });
  return { handle, workflowId, attached: running };
}

async function isRunning(client: Client, workflowId: string): Promise<boolean> {
  try {
    const description = await client.workflow.getHandle(workflowId).describe();
    return description.status.name === 'RUNNING';
  } catch {
    return false;
  }
}

export async function getProgress(client: Client, workflowId: string): Promise<PipelineProgress> {
  return client.workflow.getHandle(workflowId).query(progressQuery);
}

/**
 * Waits for the run to finish, calling `onProgress` every `intervalMs` while it goes.
 * Follows continue-as-new to the final run. Throws WorkflowFailedError on failure.
 */
export async function waitForResult(
  client: Client,
  workflowId: string,
  onProgress?: (progress: PipelineProgress) => void,
  intervalMs = 500,
): Promise<PipelineSummary> {
  const handle = client.workflow.getHandle<typeof inferencePipeline>(workflowId);
  const result = handle.result();
  let finished = false;
  void result.finally(() => (finished = true)).catch(() => undefined);
  if (onProgress) {
    void (async () => {
      while (!finished) {
        try {
          onProgress(await handle.query(progressQuery));
        } catch {
          // Between runs (continue-as-new) or before the first workflow task: try again.
        }
        await new Promise((r) => setTimeout(r, intervalMs));
      }
    })();
  }
  return result;
}

export async function cancelPipeline(client: Client, workflowId: string): Promise<void> {
  await client.workflow.getHandle(workflowId).cancel();
}

/**
 * Runs the cleanup workflow for the pipeline and returns what it removed or kept.
 * `deleteData` also removes results and errors, and the dataset, connection and bucket
 * when objinfer created them.
 */
export async function cleanupPipeline(client: Client, config: PipelineConfig, options: { deleteData: boolean }): Promise<StepOutcome[]> {
  return client.workflow.execute<typeof cleanupWorkflow>('cleanupPipeline', {
    taskQueue: config.temporal.taskQueue,
    workflowId: `${workflowIdFor(config.name)}-cleanup`,
    args: [{ config, deleteData: options.deleteData }],
    workflowIdConflictPolicy: 'USE_EXISTING',
    staticSummary: `objinfer cleanup of ${config.name}${options.deleteData ? ' (with data)' : ''}`,
  });
}

/** The root cause of a failed run, as one readable line. */
export function failureMessage(error: unknown): string {
  let current: unknown = error instanceof WorkflowFailedError ? error.cause : error;
  let message = (current as Error)?.message ?? String(error);
  while (current instanceof Error && current.cause instanceof Error) {
    current = current.cause;
    if (current instanceof Error && current.message) message = current.message;
  }
  return message;
}
