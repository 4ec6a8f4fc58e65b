/** What `objinfer status`, `list` and `cancel` do (their flags are in ../commands/runs). */
import type { Client } from '@temporalio/client';
import {
  cancelPipeline,
  controlPipeline,
  failureMessage,
  getProgress,
  newestRun,
  noWorkerWarning,
  NoSuchRun,
  pipelineStatus,
  stepsDoing,
  waitForResult,
  waitingReason,
} from '../../runs';
import { resolveTarget, workflowUiUrl } from '../../temporal/connection';
import { inferencePipeline, scheduledPipeline, watchPipeline } from '../../workflows';
import { Ids, SearchAttributes, watchProgressQuery, type PipelineSummary, type RunControlChange } from '../../workflows/contract';
import type { ListFlags, StatusFlags } from '../commands/runs';
import { Exit, exitCodeOf, UsageError } from '../common';
import { withTemporal } from '../connect';
import { printSummary, printable, progressLine, render, renderOne, summaryRecord, summaryText, type Format, type Row } from '../output';
import { ProgressView } from '../progress';

export function listQuery(filters: { stage?: string; backend?: string; dataset?: string; model?: string; status?: string }): string {
  const quoted = (value: string) => `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  // Scheduled slots too (a slot that waits for a worker has not started its pipeline run yet), and watches.
  const clauses = [`WorkflowType IN (${[inferencePipeline, scheduledPipeline, watchPipeline].map((w) => quoted(w.name)).join(', ')})`];
  const [project, dataset] = filters.dataset?.includes('.') ? filters.dataset.split('.', 2) : [undefined, filters.dataset];
  const byAttribute: [string | undefined, string][] = [
    [filters.stage, SearchAttributes.stage.name],
    [filters.backend, SearchAttributes.backend.name],
    [project, SearchAttributes.project.name],
    [dataset, SearchAttributes.dataset.name],
    [filters.model, SearchAttributes.model.name],
  ];
  for (const [value, name] of byAttribute) if (value) clauses.push(`${name} = ${quoted(value)}`);
  if (filters.status) {
    const status = filters.status
      .split('-')
      .map((w) => w[0]!.toUpperCase() + w.slice(1))
      .join('');
    clauses.push(`ExecutionStatus = ${quoted(status)}`); // continued-as-new -> ContinuedAsNew
  }
  return clauses.join(' AND ');
}

/**
 * Scheduled slots of the pipeline that are running but have not started its run (with no
 * worker, a slot waits in Running while `status` would show the last manual run).
 */
async function waitingSlotLines(client: Client, name: string): Promise<string[]> {
  const prefix = `${Ids.scheduledRun(Ids.pipelineFromUserInput(name).slice('objinfer-'.length))}-`;
  const lines: string[] = [];
  const query = `WorkflowType = '${scheduledPipeline.name}' AND ExecutionStatus = 'Running'`;
  for await (const slot of client.workflow.list({ query })) {
    if (!slot.workflowId.startsWith(prefix)) continue;
    const description = await client.workflow.getHandle(slot.workflowId).describe();
    if ((description.raw.pendingChildren ?? []).length > 0) continue; // it has started the run shown below
    const noWorker = await noWorkerWarning(client, description.taskQueue);
    lines.push(`  scheduled slot ${slot.workflowId} (started ${slot.startTime.toISOString()}) has not started its run${noWorker ? `: ${noWorker}` : ' yet'}`);
    if (lines.length >= 5) break;
  }
  return lines;
}

/** Status of a run as an exit code: what a script waiting on `objinfer status` needs. */
function exitCodeOfStatus(status: string): number {
  if (status === 'FAILED' || status === 'TIMED_OUT') return Exit.failed;
  if (status === 'CANCELLED' || status === 'TERMINATED') return Exit.cancelled;
  return Exit.ok;
}

async function showStatus(client: Client, nameOrId: string | undefined, options: StatusFlags, uiBase: ReturnType<typeof resolveTarget>): Promise<number> {
  const name = nameOrId ?? (await newestRun(client));
  if (!name) throw new UsageError('no objinfer runs found', 'start one with `objinfer run --config FILE` or `objinfer demo`');
  const slots = await waitingSlotLines(client, name);
  const status = await pipelineStatus(client, name).catch((error: unknown) => {
    if (error instanceof NoSuchRun && slots.length > 0) return undefined;
    throw error;
  });
  if (!status) {
    // Only a scheduled slot so far: it starts the run once a worker takes it.
    process.stdout.write(
      renderOne({ workflowId: Ids.pipelineFromUserInput(name), status: 'NOT STARTED', scheduledSlots: slots }, options.output, () => slots.join('\n') + '\n'),
    );
    return Exit.ok;
  }
  const record: Row = {
    workflowId: status.workflowId,
    status: status.status,
    startTime: status.startTime.toISOString(),
    closeTime: status.closeTime?.toISOString(),
  };
  if (slots.length > 0) record.scheduledSlots = slots;
  const lines = [`${status.workflowId}: ${status.status} (started ${status.startTime.toISOString()})`, ...slots];
  const url = workflowUiUrl(uiBase, status.workflowId);
  if (url) lines.push(`  ${url}`);
  if (status.status === 'RUNNING' && status.description.type === watchPipeline.name) {
    // A watch does not end: its state is its micro-batches so far (`objinfer watch --config` follows them).
    const noWorker = await noWorkerWarning(client, status.description.taskQueue);
    const progress = noWorker
      ? undefined
      : await client.workflow
          .getHandle(status.workflowId)
          .query(watchProgressQuery)
          .catch(() => undefined);
    record.watch = progress ? (progress as unknown as Row) : null;
    lines.push(
      progress
        ? `  ${progress.state}: ${progress.microBatches} micro-batches, ${progress.predicted} predicted, ${progress.failed} failed, ${progress.pendingChanges} changes waiting`
        : '  not started by a worker yet',
    );
    if (noWorker) lines.push(`  ${noWorker}`);
  } else if (status.status === 'RUNNING') {
    if (options.watch) {
      if (options.output === 'table') console.log(lines.join('\n'));
      const view = new ProgressView(process.stdout);
      const summary = await waitForResult(client, status.workflowId, {
        onProgress: (p) => view.update(p),
        onWaiting: (w) => view.waiting(w),
        onDoing: (d) => view.doing(d),
      }).finally(() => view.stop());
      printSummary(summary, options.output, options.config);
      return exitCodeOf(summary);
    }
    const noWorker = await noWorkerWarning(client, status.description.taskQueue);
    // A query needs a worker to answer it: without one it would only time out.
    const progress = noWorker ? undefined : await getProgress(client, status.workflowId).catch(() => undefined);
    const waiting = await waitingReason(client, status.workflowId).catch(() => undefined);
    const doing = await stepsDoing(client, status.workflowId).catch(() => undefined);
    record.progress = progress ? (progress as unknown as Row) : null;
    record.waiting = waiting ?? noWorker ?? null;
    record.doing = doing ?? null;
    lines.push(`  ${progress ? progressLine(progress) : 'not started by a worker yet'}`);
    if (waiting) lines.push(`  waiting: ${printable(waiting)}`);
    if (doing) lines.push(`  doing: ${printable(doing)}`);
    if (noWorker) lines.push(`  ${noWorker}`);
  } else if (status.status === 'COMPLETED') {
    const summary = (await client.workflow.getHandle(status.workflowId).result()) as PipelineSummary;
    record.summary = summaryRecord(summary);
    lines.push(summaryText(summary, undefined, options.config));
  } else if (status.status === 'FAILED' || status.status === 'TIMED_OUT') {
    const failure = await client.workflow
      .getHandle(status.workflowId)
      .result()
      .then(() => '', failureMessage);
    record.failure = failure;
    lines.push(`  failure: ${printable(failure)}`);
  } else if (status.status === 'CANCELLED') {
    lines.push('  the run was cancelled (`objinfer cancel`); finished batches are kept; run it again to go on');
  }
  process.stdout.write(renderOne(record, options.output, () => lines.join('\n')));
  return exitCodeOfStatus(status.status);
}

export async function status(run: string | undefined, options: StatusFlags): Promise<void> {
  // The config parser is loaded only when a config names the pipeline.
  const name = run ?? (options.config ? (await import('../../config')).loadConfig(options.config, {}, { checkFiles: false }).name : undefined);
  await withTemporal(async ({ client, target }) => {
    process.exitCode = await showStatus(client, name, options, target);
  }, 'no');
}

export async function list(options: ListFlags): Promise<void> {
  await withTemporal(async ({ client }) => {
    const rows: Row[] = [];
    for await (const run of client.workflow.list({ query: listQuery(options) })) {
      const attributes = run.typedSearchAttributes;
      rows.push({
        workflow: run.workflowId,
        kind: run.type === scheduledPipeline.name ? 'scheduled slot' : run.type === watchPipeline.name ? 'watch' : 'run',
        status: run.status.name,
        stage: attributes.get(SearchAttributes.stage) ?? null,
        images_done: attributes.get(SearchAttributes.imagesDone) ?? null,
        dataset: attributes.get(SearchAttributes.dataset) ?? null,
        model: attributes.get(SearchAttributes.model) ?? null,
        started: run.startTime.toISOString(),
      });
      if (rows.length >= options.limit) break;
    }
    process.stdout.write(render(rows, options.output));
  }, 'no');
}

export async function cancel(run: string): Promise<void> {
  await withTemporal(async ({ client }) => {
    const { workflowId, outcome } = await cancelPipeline(client, run);
    console.log(
      outcome === 'not running'
        ? `${workflowId} is not running; nothing to cancel`
        : `cancellation requested for ${workflowId}; its batches stop and finished work is kept`,
    );
  }, 'no');
}

export async function control(run: string, change: RunControlChange, output: Format): Promise<void> {
  if (Object.values(change).every((value) => value === undefined)) {
    throw new UsageError('nothing to change', 'give --concurrency N or --max-images N (objinfer set --help)');
  }
  await withTemporal(async ({ client }) => {
    const { workflowId, state } = await controlPipeline(client, run, change);
    const text = () =>
      `${workflowId}: ${state.paused ? 'paused (batches in flight finish; none start until `objinfer resume`)' : 'running'}, ` +
      `${state.concurrency} batch(es) at once${state.maxImages ? `, stopping after ${state.maxImages} images` : ''}${state.note ? ` (note: ${state.note})` : ''}\n`;
    process.stdout.write(renderOne({ workflowId, ...state }, output, text));
  }, 'no');
}
