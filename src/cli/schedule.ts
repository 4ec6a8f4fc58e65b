/** `objinfer schedule ...`: scheduled, incremental re-inference over Temporal Schedules. */
import { Command, Option } from 'commander';
import { noWorkerWarning } from '../client';
import { loadConfig } from '../config';
import {
  backfillSchedule,
  createSchedule,
  describeSchedule,
  deleteSchedule,
  listSchedules,
  OVERLAP_POLICIES,
  ScheduleNotFoundError,
  triggerSchedule,
  updateSchedule,
  validateScheduleRequest,
  type ScheduleRequest,
} from '../schedules';
import type { Connected } from '../temporal/connection';
import { Ids } from '../workflows/contract';
import { outputOption, UsageError, withTemporal } from './common';
import { render, renderOne, table, type Format, type Row } from './output';

interface SpecFlags {
  config: string;
  cron?: string;
  every?: string;
  timezone?: string;
  jitter?: string;
  catchupWindow?: string;
  overlap?: keyof typeof OVERLAP_POLICIES;
  note?: string;
}

function withSpecFlags(command: Command): Command {
  return command
    .requiredOption('-c, --config <file>', 'pipeline config the scheduled runs use')
    .option('--cron <expr>', 'cron expression, e.g. "0 * * * *" (hourly)')
    .option('--every <duration>', 'interval, e.g. 15m or 1h')
    .option('--timezone <tz>', 'IANA time zone for --cron, e.g. Europe/Paris')
    .option('--jitter <duration>', 'start each run up to this much later, at random')
    .option('--catchup-window <duration>', 'how far back missed runs are caught up after an outage')
    .addOption(new Option('--overlap <policy>', 'when a run is still going at the next slot').choices(Object.keys(OVERLAP_POLICIES)))
    .option('--note <text>', 'a note shown with the schedule');
}

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

export function addScheduleCommands(program: Command): void {
  const schedule = program.command('schedule').description('scheduled, incremental re-inference (Temporal Schedules)');

  withSpecFlags(schedule.command('create').description('create the schedule for a pipeline (a no-op if it exists with the same spec)')).action(
    async (flags: SpecFlags) => {
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
    },
  );

  withSpecFlags(schedule.command('update').description('change the spec or config of an existing schedule')).action(async (flags: SpecFlags) => {
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
  });

  schedule
    .command('list')
    .description("list objinfer's schedules")
    .addOption(outputOption())
    .action(async (options: { output: Format }) => {
      await withTemporal(async ({ client }) => {
        const schedules = await listSchedules(client);
        process.stdout.write(
          render(
            schedules.map((s) => ({ schedule: s.scheduleId, paused: s.paused, next: s.next?.toISOString() ?? null })),
            options.output,
          ),
        );
      }, 'no');
    });

  schedule
    .command('describe <name>')
    .description('spec, next 5 runs, recent runs with their outcome, paused state and note')
    .addOption(outputOption())
    .action((name: string, options: { output: Format }) =>
      onSchedule(name, async ({ client }, id) => {
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
      }),
    );

  for (const [verb, description] of [
    ['pause', 'stop starting runs until unpaused'],
    ['unpause', 'start runs again'],
  ] as const) {
    schedule
      .command(`${verb} <name>`)
      .description(description)
      .option('--note <text>', 'why (shown by describe)')
      .action((name: string, options: { note?: string }) =>
        onSchedule(name, async ({ client }, id) => {
          await client.schedule.getHandle(id)[verb](options.note);
          return `${verb}d schedule ${id}\n`;
        }),
      );
  }

  schedule
    .command('trigger <name>')
    .description("run now, under the schedule's overlap policy")
    .action((name: string) =>
      onSchedule(name, async ({ client }, id) => {
        await triggerSchedule(client, id);
        const { action } = await client.schedule.getHandle(id).describe();
        const warning = action.type === 'startWorkflow' ? await noWorkerWarning(client, action.taskQueue) : undefined;
        return `triggered schedule ${id}\n${warning ? `warning: ${warning}\n` : ''}`;
      }),
    );

  schedule
    .command('backfill <name>')
    .description('run the slots between --from and --to that were missed, one after another')
    .requiredOption('--from <time>', 'start (ISO 8601)')
    .requiredOption('--to <time>', 'end (ISO 8601)')
    .action(async (name: string, options: { from: string; to: string }) => {
      const from = parseDate('--from', options.from);
      const to = parseDate('--to', options.to);
      await onSchedule(name, async ({ client }, id) => {
        await backfillSchedule(client, id, from, to);
        return `backfilling schedule ${id} from ${from.toISOString()} to ${to.toISOString()}\n`;
      });
    });

  schedule
    .command('delete <name>')
    .description('delete the schedule (runs already started go on)')
    .action((name: string) =>
      onSchedule(name, async ({ client }, id) => {
        const { listed } = await deleteSchedule(client, id);
        return `deleted schedule ${id}${listed ? " (the server's listing may show it for a few seconds more)" : ''}\n`;
      }),
    );
}
