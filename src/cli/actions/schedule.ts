/** What `objinfer schedule ...` does (its flags are in ../commands/schedule). */
import { noWorkerWarning } from '../../runs';
import { loadConfig } from '../../config';
import {
  backfillSchedule,
  createSchedule,
  deleteSchedule,
  describeSchedule,
  listSchedules,
  ScheduleNotFoundError,
  triggerSchedule,
  updateSchedule,
  validateScheduleRequest,
  type ScheduleRequest,
} from '../../schedules';
import type { Connected } from '../../temporal/connection';
import { Ids } from '../../workflows/contract';
import type { SpecFlags } from '../commands/schedule';
import { UsageError } from '../common';
import { withTemporal } from '../connect';
import { render, renderOne, table, type Format, type Row } from '../output';

function requestOf(flags: SpecFlags): ScheduleRequest {
  const { config: _config, ...request } = flags;
  return request;
}

/** Runs `work` on an existing schedule and prints what it reports; a missing schedule is a usage error. */
async function onSchedule(name: string, work: (temporal: Connected, id: string) => Promise<string>, startDevServer: 'detached' | 'no' = 'no'): Promise<void> {
  const id = Ids.scheduleFromUserInput(name);
  await withTemporal(async (temporal) => {
    try {
      process.stdout.write(await work(temporal, id));
    } catch (error) {
      if (error instanceof ScheduleNotFoundError || /not found/i.test((error as Error).message)) {
        throw new UsageError(`no schedule ${id}`, 'see the existing ones with `objinfer schedule list`');
      }
      throw error;
    }
  }, startDevServer);
}

function parseDate(flag: string, value: string): Date {
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) throw new UsageError(`${flag}: "${value}" is not a date`, 'use ISO 8601, e.g. 2026-11-24T06:00:00Z');
  return date;
}

export async function create(flags: SpecFlags): Promise<void> {
  const config = loadConfig(flags.config);
  validateScheduleRequest(requestOf(flags)); // before connecting: a typo changes nothing anywhere
  await withTemporal(async ({ client, searchAttributes }) => {
    const { scheduleId: id, outcome } = await createSchedule(client, config, requestOf(flags), { searchAttributes });
    console.log(outcome === 'created' ? `created schedule ${id}` : `schedule ${id} already exists with this spec; nothing changed`);
    const queue = config.temporal.taskQueue;
    const warning = await noWorkerWarning(client, queue);
    console.error(
      `each scheduled run needs a worker polling task queue ${queue} (\`objinfer worker --task-queue ${queue}\`, kept running): ` +
        (warning ? 'none is polling now' : 'one is polling now'),
    );
    if (warning) console.error(`objinfer: warning: ${warning}`);
  });
}

export async function update(flags: SpecFlags): Promise<void> {
  const config = loadConfig(flags.config);
  validateScheduleRequest(requestOf(flags));
  await onSchedule(
    config.name,
    async ({ client, searchAttributes }, id) => {
      await updateSchedule(client, config, requestOf(flags), { searchAttributes });
      return `updated schedule ${id}\n`;
    },
    'detached',
  );
}

export async function list(options: { output: Format }): Promise<void> {
  await withTemporal(async ({ client }) => {
    const schedules = await listSchedules(client);
    process.stdout.write(
      render(
        schedules.map((s) => ({ schedule: s.scheduleId, paused: s.paused, next: s.next?.toISOString() ?? null })),
        options.output,
      ),
    );
  }, 'no');
}

export async function describe(name: string, options: { output: Format }): Promise<void> {
  await onSchedule(name, async ({ client }, id) => {
    const report = await describeSchedule(client, id);
    const runs: Row[] = report.recentRuns.map((r) => ({
      scheduled_at: r.scheduledAt.toISOString(),
      workflow: r.workflowId,
      status: r.status,
      outcome: r.outcome ?? null,
      predicted: r.summary?.predicted ?? null,
      failed: r.summary?.failed ?? null,
      already_done: r.summary?.alreadyDone ?? null,
    }));
    const taskQueue = (await client.schedule.getHandle(id).describe()).action;
    const warning = taskQueue.type === 'startWorkflow' ? await noWorkerWarning(client, taskQueue.taskQueue) : undefined;
    const record: Row = {
      scheduleId: report.scheduleId,
      pipeline: report.pipeline,
      spec: report.spec,
      overlap: report.overlap,
      paused: report.paused,
      note: report.note,
      nextRuns: report.nextActionTimes.map((t) => t.toISOString()),
      recentRuns: runs,
      warning: warning ?? null,
    };
    return renderOne(record, options.output, () =>
      [
        `schedule ${report.scheduleId} (pipeline ${report.pipeline})`,
        `  spec:     ${report.spec}`,
        `  overlap:  ${report.overlap}`,
        `  paused:   ${report.paused ? 'yes' : 'no'}${report.note ? ` (note: ${report.note})` : ''}`,
        `  next runs:\n${report.nextActionTimes.map((t) => `    ${t.toISOString()}`).join('\n') || '    (none)'}`,
        `  recent runs:\n${runs.length ? table(runs).replace(/^/gm, '    ') : '    (none yet)'}`,
        ...(warning ? [`  warning: ${warning}`] : []),
      ].join('\n'),
    );
  });
}

export async function pauseOrUnpause(verb: 'pause' | 'unpause', name: string, options: { note?: string }): Promise<void> {
  await onSchedule(name, async ({ client }, id) => {
    await client.schedule.getHandle(id)[verb](options.note);
    return `${verb}d schedule ${id}\n`;
  });
}

export async function trigger(name: string): Promise<void> {
  await onSchedule(name, async ({ client }, id) => {
    await triggerSchedule(client, id);
    const { action } = await client.schedule.getHandle(id).describe();
    const warning = action.type === 'startWorkflow' ? await noWorkerWarning(client, action.taskQueue) : undefined;
    return `triggered schedule ${id}\n${warning ? `warning: ${warning}\n` : ''}`;
  });
}

export async function backfill(name: string, options: { from: string; to: string }): Promise<void> {
  const from = parseDate('--from', options.from);
  const to = parseDate('--to', options.to);
  await onSchedule(name, async ({ client }, id) => {
    await backfillSchedule(client, id, from, to);
    return `backfilling schedule ${id} from ${from.toISOString()} to ${to.toISOString()}\n`;
  });
}

export async function remove(name: string): Promise<void> {
  await onSchedule(name, async ({ client }, id) => {
    const { listed } = await deleteSchedule(client, id);
    return `deleted schedule ${id}${listed ? " (the server's listing may show it for a few seconds more)" : ''}\n`;
  });
}
