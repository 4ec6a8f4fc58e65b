/** `objinfer schedule ...`: scheduled, incremental re-inference over Temporal Schedules. What it does is in ../actions/schedule. */
import { Command, Option } from 'commander';
import { OVERLAP_POLICIES, type OverlapName } from '../../scheduleOverlap';
import { outputOption } from '../common';
import type { Format } from '../output';

export interface SpecFlags {
  config: string;
  cron?: string;
  every?: string;
  timezone?: string;
  jitter?: string;
  catchupWindow?: string;
  overlap?: OverlapName;
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

const actions = () => import('../actions/schedule');

export function addScheduleCommands(program: Command): void {
  const schedule = program.command('schedule').description('scheduled, incremental re-inference (Temporal Schedules)');

  withSpecFlags(schedule.command('create').description('create the schedule for a pipeline (a no-op if it exists with the same spec)')).action(
    async (flags: SpecFlags) => (await actions()).create(flags),
  );

  withSpecFlags(schedule.command('update').description('change the spec or config of an existing schedule')).action(async (flags: SpecFlags) =>
    (await actions()).update(flags),
  );

  schedule
    .command('list')
    .description("list objinfer's schedules")
    .addOption(outputOption())
    .action(async (options: { output: Format }) => (await actions()).list(options));

  schedule
    .command('describe <name>')
    .description('spec, next 5 runs, recent runs with their outcome, paused state and note')
    .addOption(outputOption())
    .action(async (name: string, options: { output: Format }) => (await actions()).describe(name, options));

  for (const [verb, description] of [
    ['pause', 'stop starting runs until unpaused'],
    ['unpause', 'start runs again'],
  ] as const) {
    schedule
      .command(`${verb} <name>`)
      .description(description)
      .option('--note <text>', 'why (shown by describe)')
      .action(async (name: string, options: { note?: string }) => (await actions()).pauseOrUnpause(verb, name, options));
  }

  schedule
    .command('trigger <name>')
    .description("run now, under the schedule's overlap policy")
    .action(async (name: string) => (await actions()).trigger(name));

  schedule
    .command('backfill <name>')
    .description('run the slots between --from and --to that were missed, one after another')
    .requiredOption('--from <time>', 'start (ISO 8601)')
    .requiredOption('--to <time>', 'end (ISO 8601)')
    .action(async (name: string, options: { from: string; to: string }) => (await actions()).backfill(name, options));

  schedule
    .command('delete <name>')
    .description('delete the schedule (runs already started go on)')
    .action(async (name: string) => (await actions()).remove(name));
}
