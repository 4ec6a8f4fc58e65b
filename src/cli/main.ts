/**
 * The objinfer command line. Every command validates its input before touching
 * anything, prints one readable line and a hint on error, and exits non-zero.
 */
import { join } from 'node:path';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { Command, Option } from 'commander';
import { backendFor } from '../backends';
import { ConfigError, loadConfig, type PipelineConfig } from '../config';
import { ScheduleSpecError } from '../schedules';
import { findConfig, positiveInt, UsageError, withTemporal } from './common';
import { addScheduleCommands } from './schedule';
import { prepareDemo } from '../demo';
import { ObjinferError } from '../errors';
import { cancelPipeline, cleanupPipeline, failureMessage, getProgress, startPipeline, waitForResult } from '../client';
import {
  connectWorker,
  forgetDevServerPid,
  readDevServerPid,
  resolveTarget,
  startLocalDevServer,
  stateDir,
  TemporalUnreachable,
  workflowUiUrl,
  type TemporalTarget,
} from '../temporal/connection';
import { stopDetached } from '../temporal/devServer';
import { createWorker } from '../worker';
import { SearchAttributes, WORKFLOW_TYPE, workflowIdFor, type PipelineSummary } from '../workflows/contract';
import { csv, progressLine, summaryText, table } from './output';
import { ProgressView } from './progress';

/** Starts (or attaches to) the pipeline, runs a worker in this process unless told not to, and waits. */
async function runPipeline(config: PipelineConfig, options: { worker: boolean }): Promise<PipelineSummary> {
  backendFor(config); // an unavailable backend fails here, before a server or run is started
  return withTemporal(async (temporal) => {
    const { client, target } = temporal;
    return whileWorking(options.worker, target, config.temporal.taskQueue, async () => {
      const started = await startPipeline(client, config, { searchAttributes: temporal.searchAttributes });
      const url = workflowUiUrl(target, started.workflowId);
      console.error(`${started.attached ? 'attached to the running' : 'started'} pipeline ${config.name} (workflow ${started.workflowId})${url ? `\n  watch it: ${url}` : ''}`);
      if (!options.worker) console.error('  (no worker in this process: `objinfer worker` must be running)');
      const view = new ProgressView();
      try {
        const summary = await waitForResult(client, started.workflowId, (p) => view.update(p));
        view.complete(summary);
        return summary;
      } finally {
        view.stop();
      }
    });
  });
}

/** Runs `work` while a worker in this process polls the task queue (when `withWorker`), then stops it. */
async function whileWorking<T>(withWorker: boolean, target: TemporalTarget, taskQueue: string, work: () => Promise<T>): Promise<T> {
  if (!withWorker) return work();
  const connection = await connectWorker(target);
  try {
    const worker = await createWorker({ connection, namespace: target.namespace, taskQueue });
    return await worker.runUntil(work());
  } finally {
    await connection.close();
  }
}

function printSummary(summary: PipelineSummary): void {
  console.log(summaryText(summary));
}

async function printResults(config: PipelineConfig, limit: number, format: string, errors: boolean): Promise<void> {
  const backend = backendFor(config);
  const rows: Record<string, string>[] = errors
    ? (await backend.readErrors(limit)).map((r) => ({ uri: r.uri, error: r.error, model_version: r.modelVersion, failed_at: r.failedAt }))
    : (await backend.readResults(limit)).map((r) => ({
        uri: r.uri,
        label: r.label,
        score: r.score.toFixed(4),
        top_k: r.topK.map((t) => `${t.label}:${t.score.toFixed(3)}`).join(' '),
        model_version: r.modelVersion,
        predicted_at: r.predictedAt,
      }));
  if (format === 'json') console.log(JSON.stringify(rows, null, 2));
  else if (format === 'csv') console.log(csv(rows));
  else console.log(table(rows));
}

export function buildProgram(): Command {
  const program = new Command('objinfer')
    .description('Image classification over object tables, as a durable Temporal pipeline')
    .showHelpAfterError('(run `objinfer --help` for usage)');

  program
    .command('demo')
    .description('generate a model and images, then run the whole pipeline on them locally')
    .option('--fresh', 'start over: delete the demo folder (images, warehouse) first')
    .option('--images-per-label <n>', 'images generated for each of the 8 colours', positiveInt, 3)
    .action(async (options: { fresh?: boolean; imagesPerLabel: number }) => {
      const demo = await prepareDemo(join(stateDir(), 'demo'), { fresh: options.fresh, perLabel: options.imagesPerLabel });
      console.error(`demo inputs in ${demo.dir}: ${demo.images.length} images (one corrupt), config ${demo.configFile}`);
      const config = loadConfig(demo.configFile);
      const summary = await runPipeline(config, { worker: true });
      printSummary(summary);
      console.log('\npredictions (newest first):');
      await printResults(config, 100, 'table', false);
      if (summary.failed > 0) {
        console.log('\nimages that could not be classified:');
        await printResults(config, 100, 'table', true);
      }
      const url = workflowUiUrl(resolveTarget(), workflowIdFor(config.name));
      if (url) console.log(`\nTemporal UI for this run: ${url}`);
      console.log(`Run it again: only new or changed images are classified. Config: ${demo.configFile}`);
    });

  program
    .command('run')
    .description('run the pipeline for a config file (attaches if it is already running)')
    .requiredOption('-c, --config <file>', 'pipeline config (YAML or JSON)')
    .option('--no-worker', 'do not run a worker in this process (use `objinfer worker` elsewhere)')
    .action(async (options: { config: string; worker: boolean }) => {
      const config = loadConfig(options.config);
      const summary = await runPipeline(config, { worker: options.worker });
      printSummary(summary);
    });

  program
    .command('status [run]')
    .description('show a run: its stage and progress, or its summary when finished (RUN: pipeline name or workflow ID)')
    .option('-c, --config <file>', 'take the pipeline name from this config')
    .option('-w, --watch', 'keep showing progress until the run ends')
    .action(async (run: string | undefined, options: { config?: string; watch?: boolean }) => {
      await withTemporal(async ({ client, target }) => {
        let workflowId = run && (run.startsWith('objinfer-') ? run : workflowIdFor(run));
        if (!workflowId && options.config) workflowId = workflowIdFor(loadConfig(options.config).name);
        if (!workflowId) {
          for await (const execution of client.workflow.list({ query: `WorkflowType = '${WORKFLOW_TYPE}'` })) {
            workflowId = execution.workflowId;
            break;
          }
        }
        if (!workflowId) throw new UsageError('no objinfer runs found', 'start one with `objinfer run --config FILE` or `objinfer demo`');
        const description = await client.workflow.getHandle(workflowId).describe().catch(() => {
          throw new UsageError(`no run with workflow ID ${workflowId}`, 'check the name with `temporal workflow list` or the UI');
        });
        console.log(`${workflowId}: ${description.status.name} (started ${description.startTime.toISOString()})`);
        const url = workflowUiUrl(target, workflowId);
        if (url) console.log(`  ${url}`);
        if (description.status.name === 'RUNNING') {
          if (options.watch) {
            const view = new ProgressView(process.stdout);
            const summary = await waitForResult(client, workflowId, (p) => view.update(p)).finally(() => view.stop());
            printSummary(summary);
          } else {
            console.log(`  ${progressLine(await getProgress(client, workflowId))}`);
          }
        } else if (description.status.name === 'COMPLETED') {
          printSummary(await client.workflow.getHandle(workflowId).result());
        } else if (description.status.name === 'FAILED') {
          await client.workflow.getHandle(workflowId).result().catch((error) => console.log(`  failure: ${failureMessage(error)}`));
        }
      }, 'no');
    });

  program
    .command('list')
    .description('recent pipeline runs, filtered by their search attributes')
    .option('--stage <stage>', 'preflight, provision, plan, infer or done')
    .option('--backend <backend>', 'local or gcp')
    .option('--dataset <project.dataset>', 'e.g. local.objinfer_demo')
    .option('--model <name>', 'model name')
    .addOption(new Option('--status <status>', 'execution status').choices(['running', 'completed', 'failed', 'canceled', 'terminated', 'continued-as-new', 'timed-out']))
    .option('-n, --limit <n>', 'runs to show', positiveInt, 20)
    .action(async (options: { stage?: string; backend?: string; dataset?: string; model?: string; status?: string; limit: number }) => {
      await withTemporal(async ({ client }) => {
        const rows: Record<string, string>[] = [];
        for await (const run of client.workflow.list({ query: listQuery(options) })) {
          const attributes = run.typedSearchAttributes;
          rows.push({
            workflow: run.workflowId,
            status: run.status.name,
            stage: attributes.get(SearchAttributes.stage) ?? '-',
            images_done: String(attributes.get(SearchAttributes.imagesDone) ?? '-'),
            model: attributes.get(SearchAttributes.model) ?? '-',
            started: run.startTime.toISOString(),
          });
          if (rows.length >= options.limit) break;
        }
        console.log(table(rows));
      }, 'no');
    });

  program
    .command('results')
    .description('print the predictions table (readable while a run is writing)')
    .option('-c, --config <file>', 'pipeline config (default: ./objinfer.yaml, else the demo)')
    .option('-n, --limit <n>', 'rows to show', positiveInt, 20)
    .addOption(new Option('-f, --format <format>', 'output format').choices(['table', 'json', 'csv']).default('table'))
    .option('--errors', 'show the errors table (images that could not be classified) instead')
    .action(async (options: { config?: string; limit: number; format: string; errors?: boolean }) => {
      await printResults(findConfig(options.config), options.limit, options.format, options.errors ?? false);
    });

  program
    .command('plan')
    .description('print every statement and API call a run would make, in order (BigQuery dry-run estimates on gcp)')
    .requiredOption('-c, --config <file>', 'pipeline config')
    .action(async (options: { config: string }) => {
      const calls = await backendFor(loadConfig(options.config)).describePlan();
      calls.forEach((c, i) => {
        const bytes = c.estimatedBytes !== undefined ? `  -- dry run: ${c.estimatedBytes} bytes` : '';
        console.log(`${String(i + 1).padStart(2)}. ${c.step}${bytes}\n${c.call.replace(/^/gm, '    ')}`);
      });
    });

  program
    .command('cleanup')
    .description('remove what objinfer created for a pipeline, as a workflow (data, dataset, connection and bucket only with --yes)')
    .requiredOption('-c, --config <file>', 'pipeline config')
    .option('--yes', 'also delete results, errors, and the dataset, connection and bucket objinfer created')
    .option('--no-worker', 'do not run a worker in this process')
    .action(async (options: { config: string; yes?: boolean; worker: boolean }) => {
      const config = loadConfig(options.config);
      backendFor(config);
      await withTemporal(async ({ client, target }) => {
        const outcomes = await whileWorking(options.worker, target, config.temporal.taskQueue, () =>
          cleanupPipeline(client, config, { deleteData: options.yes ?? false }),
        );
        console.log(table(outcomes.map((o) => ({ step: o.step, result: o.action, detail: o.detail }))));
      });
    });

  program
    .command('cancel <run>')
    .description('cancel a running pipeline (RUN: pipeline name or workflow ID)')
    .action(async (run: string) => {
      await withTemporal(async ({ client }) => {
        const workflowId = run.startsWith('objinfer-') ? run : workflowIdFor(run);
        await cancelPipeline(client, workflowId);
        console.log(`cancellation requested for ${workflowId}`);
      }, 'no');
    });

  program
    .command('worker')
    .description('run a worker (scale out by starting more on the same task queue)')
    .option('-q, --task-queue <name>', 'task queue to poll', 'objinfer')
    .option('--max-concurrent-activities <n>', 'steps and batches this worker runs at once', positiveInt, 8)
    .action(async (options: { taskQueue: string; maxConcurrentActivities: number }) => {
      await withTemporal(async ({ target }) => {
        const connection = await connectWorker(target);
        const worker = await createWorker({
          connection, namespace: target.namespace, taskQueue: options.taskQueue, maxConcurrentActivities: options.maxConcurrentActivities,
        });
        console.error(`worker polling task queue ${options.taskQueue} on ${target.address} (Ctrl-C to stop)`);
        await worker.run();
        await connection.close();
      });
    });

  const devServer = program.command('dev-server').description('a local Temporal dev server (SQLite in .objinfer/, UI on :8233)');
  devServer
    .command('start', { isDefault: true })
    .description('run a dev server in the foreground until Ctrl-C')
    .action(async () => {
      const server = await startLocalDevServer('attached');
      console.log(`Temporal dev server at ${server.address}, UI ${server.uiUrl} (Ctrl-C to stop)`);
      await new Promise<void>((done) => {
        process.once('SIGINT', done);
        process.once('SIGTERM', done);
      });
      await server.stop();
    });
  devServer
    .command('stop')
    .description('stop the dev server that `objinfer demo` or `run` left running')
    .action(() => {
      const pid = readDevServerPid();
      if (pid && stopDetached(pid)) console.log(`stopped the dev server (pid ${pid})`);
      else console.log('no dev server started by objinfer is running');
      forgetDevServerPid();
    });

  addScheduleCommands(program);
  return program;
}

/** A visibility query from `list` filters; values are quoted, so they cannot change the query. */
export function listQuery(filters: { stage?: string; backend?: string; dataset?: string; model?: string; status?: string }): string {
  const quoted = (value: string) => `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  const clauses = [`WorkflowType = ${quoted(WORKFLOW_TYPE)}`];
  const byAttribute: [string | undefined, string][] = [
    [filters.stage, SearchAttributes.stage.name],
    [filters.backend, SearchAttributes.backend.name],
    [filters.dataset, SearchAttributes.dataset.name],
    [filters.model, SearchAttributes.model.name],
  ];
  for (const [value, name] of byAttribute) if (value) clauses.push(`${name} = ${quoted(value)}`);
  if (filters.status) {
    const status = filters.status.split('-').map((w) => w[0]!.toUpperCase() + w.slice(1)).join('');
    clauses.push(`ExecutionStatus = ${quoted(status)}`); // continued-as-new -> ContinuedAsNew
  }
  return clauses.join(' AND ');
}

/** Prints an error as one line plus what to do, and sets the exit code. */
export function reportError(error: unknown): number {
  const line = (message: string, hint?: string) => {
    console.error(`objinfer: ${message}`);
    if (hint) console.error(`  ${hint}`);
  };
  if (error instanceof ConfigError) {
    line(`config error: ${error.message}`, 'fix the config file and run again; nothing was changed');
    return 2;
  }
  if (error instanceof ScheduleSpecError) {
    line(`schedule error: ${error.message}`, 'nothing was created or changed; fix the flag and run again');
    return 2;
  }
  if (error instanceof UsageError) {
    line(error.message, error.hint);
    return 2;
  }
  if (error instanceof TemporalUnreachable) {
    line(error.message, 'set TEMPORAL_ADDRESS (or a profile in temporal.toml), or unset it to use a local dev server');
    return 3;
  }
  if (error instanceof ObjinferError) {
    line(error.message);
    return 1;
  }
  line(`pipeline failed: ${failureMessage(error)}`, 'see the run in the Temporal UI for the full history; fix the cause and run again (finished work is kept)');
  return 1;
}

export async function main(argv: string[]): Promise<void> {
  // The SDK logs every workflow and worker event at INFO; a CLI user wants progress and errors.
  Runtime.install({ logger: new DefaultLogger(process.env.OBJINFER_LOG_LEVEL === 'debug' ? 'DEBUG' : 'WARN') });
  try {
    await buildProgram().parseAsync(argv);
  } catch (error) {
    process.exitCode = reportError(error);
  }
}
