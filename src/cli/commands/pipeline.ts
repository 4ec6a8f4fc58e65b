/** `objinfer demo`, `run`, `plan` and `cleanup`: what a pipeline does, started from here. What they do is in ../actions/pipeline, loaded when one runs. */
import { Command } from 'commander';
import { outputOption, port, positiveInt } from '../common';
import type { Format } from '../output';

export interface DemoFlags {
  fresh?: boolean;
  imagesPerLabel: number;
  port?: number;
  uiPort?: number;
}
export interface RunFlags {
  config: string;
  worker: boolean;
  maxImages?: number;
  retryFailed?: boolean;
  output: Format;
}
export interface WatchFlags {
  config: string;
  worker: boolean;
  detach?: boolean;
  output: Format;
}
export interface PlanFlags {
  config: string;
  output: Format;
}
export interface CleanupFlags {
  config: string;
  yes?: boolean;
  worker: boolean;
  output: Format;
}

const actions = () => import('../actions/pipeline');

export function addPipelineCommands(program: Command): void {
  program
    .command('demo')
    .description('generate a model and images, then run the whole pipeline on them locally')
    .option('--fresh', 'start over: delete the demo folder (images, warehouse) first')
    .option('--images-per-label <n>', 'images generated for each of the 8 colours', positiveInt, 3)
    .option('--port <port>', "port of objinfer's Temporal dev server (default 7233)", port)
    .option('--ui-port <port>', 'port of its web UI (default 8233, or --port + 1000)', port)
    .action(async (options: DemoFlags) => (await actions()).demo(options));

  program
    .command('run')
    .description('run the pipeline for a config file (attaches if the pipeline is already running, whoever started it)')
    .requiredOption('-c, --config <file>', 'pipeline config (YAML or JSON)')
    .option('--no-worker', 'do not run a worker in this process (use `objinfer worker` elsewhere)')
    .option('--retry-failed', 'also try again the images whose earlier failure was recorded as permanent')
    .option('--max-images <n>', 'a budget: start no batch once this many images are done; the rest stay pending for the next run', positiveInt)
    .addOption(outputOption())
    .action(async (options: RunFlags) => (await actions()).run(options));

  program
    .command('watch')
    .description(
      'keep predicting as images arrive: a long-running watch that predicts each micro-batch of new or changed images (local backend: file-system events)',
    )
    .requiredOption('-c, --config <file>', 'pipeline config (its `watch` section sets the micro-batches)')
    .option('--no-worker', 'do not run a worker in this process (use `objinfer worker` elsewhere)')
    .option('--detach', 'start the watch (or find it running) and return; `objinfer cancel <name>-watch` stops it')
    .addOption(outputOption())
    .action(async (options: WatchFlags) => (await import('../actions/watch')).watch(options));

  program
    .command('plan')
    .description('print every statement and API call a run would make, in order (BigQuery dry-run estimates on gcp when credentials are present)')
    .requiredOption('-c, --config <file>', 'pipeline config')
    .addOption(outputOption())
    .action(async (options: PlanFlags) => (await actions()).plan(options));

  program
    .command('cleanup')
    .description('remove what objinfer created for a pipeline, as a workflow (data, dataset, connection and bucket only with --yes)')
    .requiredOption('-c, --config <file>', 'pipeline config')
    .option('--yes', 'also delete results, errors, and the dataset, connection and bucket objinfer created')
    .option('--no-worker', 'do not run a worker in this process')
    .addOption(outputOption())
    .action(async (options: CleanupFlags) => (await actions()).cleanup(options));
}
