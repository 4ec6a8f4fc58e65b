/** `objinfer status`, `list` and `cancel`: runs as Temporal sees them. What they do is in ../actions/runs. */
import { Command, Option } from 'commander';
import { MAX_CONCURRENCY } from '../../workflows/limits';
import { Stage } from '../../workflows/stages';
import { outputOption, positiveInt } from '../common';
import type { Format } from '../output';

export interface StatusFlags {
  config?: string;
  watch?: boolean;
  output: Format;
}
export interface ListFlags {
  stage?: string;
  backend?: string;
  dataset?: string;
  model?: string;
  status?: string;
  limit: number;
  output: Format;
}

export interface ControlFlags {
  note?: string;
  output: Format;
}

const actions = () => import('../actions/runs');

export function addRunCommands(program: Command): void {
  program
    .command('status [run]')
    .description("show a pipeline's newest run, whoever started it: stage and progress, or its summary (RUN: pipeline name or workflow ID)")
    .option('-c, --config <file>', 'take the pipeline name from this config')
    .option('-w, --watch', 'keep showing progress until the run ends')
    .addOption(outputOption())
    .action(async (run: string | undefined, options: StatusFlags) => (await actions()).status(run, options));

  program
    .command('list')
    .description('recent pipeline runs, filtered by their search attributes')
    .addOption(new Option('--stage <stage>', 'stage of the run').choices([...Stage]))
    .addOption(new Option('--backend <backend>', 'backend').choices(['local', 'gcp']))
    .option('--dataset <dataset>', 'dataset as written in the config, or project.dataset')
    .option('--model <name>', 'model name')
    .addOption(
      new Option('--status <status>', 'execution status').choices([
        'running',
        'completed',
        'failed',
        'canceled',
        'terminated',
        'continued-as-new',
        'timed-out',
      ]),
    )
    .option('-n, --limit <n>', 'runs to show', positiveInt, 20)
    .addOption(outputOption())
    .action(async (options: ListFlags) => (await actions()).list(options));

  program
    .command('cancel <run>')
    .description('cancel a running pipeline (RUN: pipeline name or workflow ID)')
    .action(async (run: string) => (await actions()).cancel(run));

  for (const [verb, description] of [
    ['pause', 'stop starting batches of a running pipeline (those in flight finish); `objinfer resume` goes on'],
    ['resume', 'start batches again in a paused pipeline'],
  ] as const) {
    program
      .command(`${verb} <run>`)
      .description(`${description} (RUN: pipeline name or workflow ID)`)
      .option('--note <text>', 'why (shown by status and in the Temporal UI)')
      .addOption(outputOption())
      .action(async (run: string, options: ControlFlags) => (await actions()).control(run, { paused: verb === 'pause', note: options.note }, options.output));
  }

  program
    .command('set <run>')
    .description('change a running pipeline without restarting it (RUN: pipeline name or workflow ID)')
    .option('--concurrency <n>', `batches at once, 1 to ${MAX_CONCURRENCY} (for this run; the config's batch.concurrency is unchanged)`, positiveInt)
    .option('--max-images <n>', 'a budget: start no batch once this many images are done in this run; the rest stay pending for the next run', positiveInt)
    .option('--note <text>', 'why (shown by status and in the Temporal UI)')
    .addOption(outputOption())
    .action(async (run: string, options: ControlFlags & { concurrency?: number; maxImages?: number }) =>
      (await actions()).control(run, { concurrency: options.concurrency, maxImages: options.maxImages, note: options.note }, options.output),
    );
}
