/**
 * The objinfer command line. Every command validates its input before touching anything,
 * prints one readable line and a hint on error, and exits with a documented code
 * (see `Exit`): 0 ok, 1 the run failed, 2 bad input, 3 Temporal unreachable, 4 cancelled,
 * 130/143 interrupted while watching.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { CancelledFailure, TerminatedFailure } from '@temporalio/common';
import { Command, CommanderError, Option } from 'commander';
import {
  cancelPipeline,
  cleanupPipeline,
  describePlan,
  failureMessage,
  getProgress,
  isTemporalUnavailable,
  newestRun,
  noWorkerWarning,
  NoSuchRun,
  pipelineStatus,
  readErrors,
  readResults,
  stepsDoing,
  waitForResult,
  waitingReason,
} from '../client';
import { BackendRegistry } from '../activities';
import { ConfigError, loadConfig, problemText } from '../config';
import { prepareDemo } from '../demo';
import { ObjinferError } from '../errors';
import { ERROR_COLUMNS, errorRecord, EXPORT_FORMATS, exportRows, RESULT_COLUMNS, resultRecord, type ExportFormat } from '../exports';
import { writeReport } from '../report';
import { ScheduleSpecError } from '../schedules';
import {
  connectWorker,
  forgetDevServer,
  readDevServerRecord,
  resolveTarget,
  startLocalDevServer,
  stateDir,
  TemporalUnreachable,
  workflowUiUrl,
} from '../temporal/connection';
import { stopDetached } from '../temporal/devServer';
import { createWorker } from '../worker';
import { inferencePipeline } from '../workflows';
import { Ids, SearchAttributes, Stage, type PipelineSummary } from '../workflows/contract';
import { Exit, findConfig, isoTime, outputOption, port, positiveInt, score, UsageError, withTemporal } from './common';
import { installLogging } from './logging';
import { printable, progressLine, render, renderOne, summaryRecord, summaryText, table, terminalWidth, type Format, type Row } from './output';
import { ProgressView } from './progress';
import { checkModelFirst, exitCodeOf, Interrupted, runPipeline, whileWorking } from './run';
import { addScheduleCommands } from './schedule';

const VERSION = (JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;

/** The row filters `results` and `export` share. */
function withRowFilters(command: Command): Command {
  return command
    .option('--label <label>', 'only this label')
    .option('--min-score <score>', 'only scores at least this', score)
    .option('--max-score <score>', 'only scores at most this', score)
    .option('--run <runId>', 'only rows written by this run')
    .option('--since <time>', 'only rows written since (ISO 8601)', isoTime);
}

function printSummary(summary: PipelineSummary, format: Format): void {
  process.stdout.write(renderOne(summaryRecord(summary), format, () => summaryText(summary)));
  if (summary.failed > 0 && format === 'table') {
    console.error(`objinfer: warning: ${summary.failed} image(s) failed in this run; see why with \`objinfer results --errors\``);
  }
}

interface ResultFlags {
  config?: string;
  limit: number;
  all?: boolean;
  errors?: boolean;
  label?: string;
  minScore?: number;
  maxScore?: number;
  run?: string;
  since?: Date;
  output: Format;
}

const resultRows = (rows: Awaited<ReturnType<typeof readResults>>): Row[] => rows.map(resultRecord);
const errorRows = (rows: Awaited<ReturnType<typeof readErrors>>): Row[] => rows.map(errorRecord);

/** A table for people: scores rounded, top-k as "label 0.912" pairs. */
function resultTable(rows: Row[]): Row[] {
  return rows.map((r) => ({
    uri: r.uri,
    label: r.label,
    score: (r.score as number).toFixed(4),
    top_k: (r.top_k as { label: string; score: number }[]).map((t) => `${t.label} ${t.score.toFixed(3)}`).join(' | '),
    predicted_at: r.predicted_at,
  }));
}

async function printResults(flags: ResultFlags): Promise<void> {
  const spec = findConfig(flags.config, { checkFiles: false });
  const filter = {
    limit: flags.all ? undefined : flags.limit,
    label: flags.label,
    minScore: flags.minScore,
    maxScore: flags.maxScore,
    runId: flags.run,
    since: flags.since,
  };
  if (flags.errors) {
    const rows = errorRows(await readErrors(spec, filter));
    process.stdout.write(render(rows, flags.output, { columns: flags.output === 'table' ? ['uri', 'kind', 'error', 'failed_at'] : [...ERROR_COLUMNS] }));
    return;
  }
  const rows = resultRows(await readResults(spec, filter));
  process.stdout.write(flags.output === 'table' ? render(resultTable(rows), 'table') : render(rows, flags.output, { columns: [...RESULT_COLUMNS] }));
}

/** The demo's predictions for a terminal: names relative to the images folder, one screen at most. */
async function printDemoResults(configFile: string, imagesDir: string, shown: number): Promise<void> {
  const spec = loadConfig(configFile);
  const rows = await readResults(spec, { limit: 1000 });
  const width = terminalWidth() ?? 100;
  const name = (uri: string) => relative(imagesDir, decodeURIComponent(uri.replace(/^file:\/\//, '')));
  const compact = rows.slice(0, shown).map((r) => ({
    image: name(r.uri),
    label: r.label,
    score: r.score.toFixed(3),
    'top 3': r.topK.map((t) => `${t.label} ${t.score.toFixed(2)}`).join(', '),
  }));
  console.log(`\npredictions (${Math.min(shown, rows.length)} of ${rows.length}, newest first):`);
  console.log(table(compact, { maxWidth: width }));
  if (rows.length > shown) console.log(`... ${rows.length - shown} more: objinfer results --config ${configFile} --all`);
  const errors = await readErrors(spec, { limit: 5 });
  if (errors.length) {
    console.log('\nimages that could not be classified:');
    console.log(
      table(
        errors.map((e) => ({ image: name(e.uri), error: e.error })),
        { maxWidth: width },
      ),
    );
  }
}

/** A visibility query from `list` filters; values are quoted, so they cannot change the query. */
export function listQuery(filters: { stage?: string; backend?: string; dataset?: string; model?: string; status?: string }): string {
  const quoted = (value: string) => `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  const clauses = [`WorkflowType = ${quoted(inferencePipeline.name)}`];
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

/** Status of a run as an exit code: what a script waiting on `objinfer status` needs. */
function exitCodeOfStatus(status: string): number {
  if (status === 'FAILED' || status === 'TIMED_OUT') return Exit.failed;
  if (status === 'CANCELLED' || status === 'TERMINATED') return Exit.cancelled;
  return Exit.ok;
}

async function showStatus(
  client: Client,
  nameOrId: string | undefined,
  options: { watch?: boolean; output: Format },
  uiBase: ReturnType<typeof resolveTarget>,
): Promise<number> {
  const name = nameOrId ?? (await newestRun(client));
  if (!name) throw new UsageError('no objinfer runs found', 'start one with `objinfer run --config FILE` or `objinfer demo`');
  const status = await pipelineStatus(client, name);
  const record: Row = {
    workflowId: status.workflowId,
    status: status.status,
    startTime: status.startTime.toISOString(),
    closeTime: status.closeTime?.toISOString(),
  };
  const lines = [`${status.workflowId}: ${status.status} (started ${status.startTime.toISOString()})`];
  const url = workflowUiUrl(uiBase, status.workflowId);
  if (url) lines.push(`  ${url}`);
  if (status.status === 'RUNNING') {
    if (options.watch) {
      if (options.output === 'table') console.log(lines.join('\n'));
      const view = new ProgressView(process.stdout);
      const summary = await waitForResult(client, status.workflowId, {
        onProgress: (p) => view.update(p),
        onWaiting: (w) => view.waiting(w),
        onDoing: (d) => view.doing(d),
      }).finally(() => view.stop());
      printSummary(summary, options.output);
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
    lines.push(summaryText(summary));
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

export function buildProgram(): Command {
  const program = new Command('objinfer')
    .description('Image classification over object tables, as a durable Temporal pipeline')
    .version(VERSION, '-V, --version')
    .option('-v, --verbose', "show the Temporal SDK's log lines (one per event)")
    .showHelpAfterError('(run `objinfer --help` for usage)')
    .exitOverride();
  program.hook('preAction', (_root, command) => {
    installLogging(command.name() === 'worker' ? 'service' : program.opts<{ verbose?: boolean }>().verbose ? 'verbose' : 'quiet');
  });

  program
    .command('demo')
    .description('generate a model and images, then run the whole pipeline on them locally')
    .option('--fresh', 'start over: delete the demo folder (images, warehouse) first')
    .option('--images-per-label <n>', 'images generated for each of the 8 colours', positiveInt, 3)
    .option('--port <port>', "port of objinfer's Temporal dev server (default 7233)", port)
    .option('--ui-port <port>', 'port of its web UI (default 8233, or --port + 1000)', port)
    .action(async (options: { fresh?: boolean; imagesPerLabel: number; port?: number; uiPort?: number }) => {
      const demo = await prepareDemo(join(stateDir(), 'demo'), { fresh: options.fresh, perLabel: options.imagesPerLabel });
      console.error(`demo inputs in ${demo.dir}: ${demo.images.length} images (one corrupt), config ${demo.configFile}`);
      const spec = loadConfig(demo.configFile);
      const target = { port: options.port, uiPort: options.uiPort };
      const summary = await runPipeline(spec, { worker: true, target });
      printSummary(summary, 'table');
      await printDemoResults(demo.configFile, join(demo.dir, 'images'), 12);
      const report = join(demo.dir, 'report.html');
      await writeReport(spec, { out: report });
      console.log(`\nthe report (images, labels, scores, errors), to open in a browser:\n  ${report}`);
      const url = workflowUiUrl(resolveTarget(process.env, options.port ? target : {}), Ids.pipeline(spec.name));
      if (url) console.log(`the run in the Temporal UI:\n  ${url}`);
      console.log(`run it again: only new or changed images are classified; its config:\n  ${demo.configFile}`);
    });

  program
    .command('run')
    .description('run the pipeline for a config file (attaches if the pipeline is already running, whoever started it)')
    .requiredOption('-c, --config <file>', 'pipeline config (YAML or JSON)')
    .option('--no-worker', 'do not run a worker in this process (use `objinfer worker` elsewhere)')
    .option('--retry-failed', 'also try again the images whose earlier failure was recorded as permanent')
    .addOption(outputOption())
    .action(async (options: { config: string; worker: boolean; retryFailed?: boolean; output: Format }) => {
      const overrides = options.retryFailed ? { retryFailed: true } : {};
      const spec = loadConfig(options.config, overrides, { checkFiles: options.worker });
      const summary = await runPipeline(spec, { worker: options.worker });
      printSummary(summary, options.output);
      process.exitCode = exitCodeOf(summary);
      if (process.exitCode !== Exit.ok)
        console.error(`objinfer: no image was predicted: all ${summary.failed} failed (see why: objinfer results --errors --config ${options.config})`);
    });

  program
    .command('status [run]')
    .description("show a pipeline's newest run, whoever started it: stage and progress, or its summary (RUN: pipeline name or workflow ID)")
    .option('-c, --config <file>', 'take the pipeline name from this config')
    .option('-w, --watch', 'keep showing progress until the run ends')
    .addOption(outputOption())
    .action(async (run: string | undefined, options: { config?: string; watch?: boolean; output: Format }) => {
      const name = run ?? (options.config ? loadConfig(options.config, {}, { checkFiles: false }).name : undefined);
      await withTemporal(async ({ client, target }) => {
        process.exitCode = await showStatus(client, name, options, target);
      }, 'no');
    });

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
    .action(async (options: { stage?: string; backend?: string; dataset?: string; model?: string; status?: string; limit: number; output: Format }) => {
      await withTemporal(async ({ client }) => {
        const rows: Row[] = [];
        for await (const run of client.workflow.list({ query: listQuery(options) })) {
          const attributes = run.typedSearchAttributes;
          rows.push({
            workflow: run.workflowId,
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
    });

  const results = program
    .command('results')
    .description('print predictions (or, with --errors, failures), newest first; readable while a run is writing')
    .option('-c, --config <file>', 'pipeline config (default: ./objinfer.yaml, else the demo)')
    .option('-n, --limit <n>', 'rows to show', positiveInt, 20)
    .option('--all', 'every row (no limit)')
    .option('--errors', 'show the errors table (images that could not be classified) instead');
  withRowFilters(results).addOption(outputOption()).action(printResults);

  program
    .command('report')
    .description('write one HTML file (opens offline) with counts, charts, a gallery of thumbnails with their top-k, and the errors')
    .option('-c, --config <file>', 'pipeline config (default: ./objinfer.yaml, else the demo)')
    .option('--out <file>', 'where to write it (default: ./<pipeline>-report.html)')
    .option('--run <runId>', 'only rows written by this run')
    .addOption(outputOption())
    .action(async (options: { config?: string; out?: string; run?: string; output: Format }) => {
      const spec = findConfig(options.config, { checkFiles: false });
      const out = resolve(options.out ?? `${spec.name}-report.html`);
      const progress = process.stderr.isTTY ? (done: number, total: number) => process.stderr.write(`\rthumbnails ${done}/${total}`) : undefined;
      const data = await writeReport(spec, { out, runId: options.run, onProgress: progress });
      if (progress) process.stderr.write('\n');
      const record = { out, url: pathToFileURL(out).href, predicted: data.cards.length, failed: data.errors.length };
      process.stdout.write(renderOne(record, options.output, () => `report of ${record.predicted} predictions and ${record.failed} errors:\n  ${record.url}`));
    });

  const exporter = program
    .command('export')
    .description('write the results (or, with --errors, the failures) as Parquet, CSV, JSON lines or Label Studio tasks')
    .option('-c, --config <file>', 'pipeline config (default: ./objinfer.yaml, else the demo)')
    .addOption(new Option('--format <format>', 'file format').choices(EXPORT_FORMATS).makeOptionMandatory())
    .option('--out <file>', 'where to write it (default: ./<pipeline>-results.<ext>)')
    .option('--errors', 'the errors table instead of the results');
  withRowFilters(exporter)
    .addOption(outputOption())
    .action(async (options: Omit<ResultFlags, 'limit'> & { format: ExportFormat; out?: string }) => {
      const spec = findConfig(options.config, { checkFiles: false });
      if (options.errors && (options.label !== undefined || options.minScore !== undefined || options.maxScore !== undefined)) {
        throw new UsageError(
          '--label, --min-score and --max-score filter predictions; the errors table has no labels or scores',
          'drop them, or drop --errors',
        );
      }
      const extension = { parquet: 'parquet', csv: 'csv', jsonl: 'jsonl', 'label-studio': 'label-studio.json' }[options.format];
      const out = resolve(options.out ?? `${spec.name}-${options.errors ? 'errors' : 'results'}.${extension}`);
      const filter = { label: options.label, minScore: options.minScore, maxScore: options.maxScore, runId: options.run, since: options.since };
      const outcome = await exportRows(spec, { format: options.format, out, errors: options.errors, filter });
      process.stdout.write(
        renderOne({ ...outcome }, options.output, () => `${outcome.rows} ${outcome.table} rows written to ${outcome.out} (${outcome.format})`),
      );
    });

  program
    .command('plan')
    .description('print every statement and API call a run would make, in order (BigQuery dry-run estimates on gcp when credentials are present)')
    .requiredOption('-c, --config <file>', 'pipeline config')
    .addOption(outputOption())
    .action(async (options: { config: string; output: Format }) => {
      const spec = loadConfig(options.config, {}, { checkFiles: false });
      if (spec.backend === 'local' || existsSync(spec.model.source)) {
        for (const warning of await checkModelFirst(spec)) console.error(`objinfer: warning: ${warning}`);
      }
      const calls = await describePlan(spec);
      if (options.output !== 'table') {
        process.stdout.write(
          render(
            calls.map((c, i) => ({ order: i + 1, step: c.step, call: c.call, estimatedBytes: c.estimatedBytes ?? null, note: c.estimateNote ?? null })),
            options.output,
          ),
        );
        return;
      }
      calls.forEach((c, i) => {
        const bytes =
          c.estimatedBytes !== undefined
            ? `  -- dry run: ${c.estimatedBytes} bytes${c.estimateNote ? ` ${c.estimateNote}` : ''}`
            : c.estimateNote
              ? `  -- ${c.estimateNote}`
              : '';
        console.log(`${String(i + 1).padStart(2)}. ${c.step}${bytes}\n${c.call.replace(/^/gm, '    ')}`);
      });
      if (spec.backend === 'gcp' && !calls.some((c) => c.estimatedBytes !== undefined)) {
        console.log('\n(no dry-run estimates: they need Google credentials (gcloud auth application-default login) and the tables a first run creates)');
      }
    });

  program
    .command('cleanup')
    .description('remove what objinfer created for a pipeline, as a workflow (data, dataset, connection and bucket only with --yes)')
    .requiredOption('-c, --config <file>', 'pipeline config')
    .option('--yes', 'also delete results, errors, and the dataset, connection and bucket objinfer created')
    .option('--no-worker', 'do not run a worker in this process')
    .addOption(outputOption())
    .action(async (options: { config: string; yes?: boolean; worker: boolean; output: Format }) => {
      const spec = loadConfig(options.config, {}, { checkFiles: false });
      await withTemporal(async ({ client, target }) => {
        const backends = new BackendRegistry();
        backends.remember(spec);
        const outcomes = await whileWorking(options.worker, target, spec.temporal.taskQueue, backends, () =>
          cleanupPipeline(client, spec, { deleteData: options.yes ?? false }),
        );
        process.stdout.write(
          render(
            outcomes.map((o) => ({ step: o.step, result: o.action, detail: o.detail })),
            options.output,
          ),
        );
      });
    });

  program
    .command('cancel <run>')
    .description('cancel a running pipeline (RUN: pipeline name or workflow ID)')
    .action(async (run: string) => {
      await withTemporal(async ({ client }) => {
        const { workflowId, outcome } = await cancelPipeline(client, run);
        console.log(
          outcome === 'not running'
            ? `${workflowId} is not running; nothing to cancel`
            : `cancellation requested for ${workflowId}; its batches stop and finished work is kept`,
        );
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
          connection,
          namespace: target.namespace,
          taskQueue: options.taskQueue,
          maxConcurrentActivities: options.maxConcurrentActivities,
        });
        const stop = () => worker.shutdown();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        console.error(`worker polling task queue ${options.taskQueue} on ${target.address} (Ctrl-C to stop)`);
        await worker.run();
        await connection.close();
      });
    });

  const devServer = program.command('dev-server').description('a local Temporal dev server (SQLite in .objinfer/, UI on :8233)');
  devServer
    .command('start', { isDefault: true })
    .description('run a dev server in the foreground until Ctrl-C')
    .option('--port <port>', 'port to listen on (default 7233)', port)
    .option('--ui-port <port>', 'port of the web UI (default 8233, or --port + 1000)', port)
    .action(async (options: { port?: number; uiPort?: number }) => {
      const server = await startLocalDevServer('attached', options);
      console.log(`Temporal dev server at ${server.address}, UI ${server.uiUrl} (Ctrl-C to stop); other objinfer commands here use it`);
      await new Promise<void>((done) => {
        process.once('SIGINT', done);
        process.once('SIGTERM', done);
      });
      await server.stop();
      forgetDevServer();
    });
  devServer
    .command('stop')
    .description('stop the dev server that `objinfer demo` or `run` left running')
    .action(() => {
      const record = readDevServerRecord();
      if (record && stopDetached(record.pid)) console.log(`stopped the dev server (pid ${record.pid}, port ${record.port})`);
      else console.log('no dev server started by objinfer is running');
      forgetDevServer();
    });

  addScheduleCommands(program);
  return program;
}

/** Prints an error as one line plus what to do, and returns the exit code. */
export function reportError(error: unknown): number {
  const line = (message: string, hint?: string) => {
    console.error(`objinfer: ${printable(message)}`);
    if (hint) console.error(`  ${hint}`);
  };
  if (error instanceof CommanderError) {
    return error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help' ? Exit.ok : Exit.usage;
  }
  if (error instanceof Interrupted) return error.exitCode;
  if (error instanceof ConfigError) {
    const problems = error.problems.map((p) => printable(problemText(p)));
    // One line per problem: each escaped on its own, so the list keeps its line breaks.
    if (problems.length === 1) line(`config error: ${problems[0]}`, 'fix the config and run again; nothing was changed');
    else line(`config errors (${problems.length}):`, `${problems.map((p) => `- ${p}`).join('\n  ')}\n  fix the config and run again; nothing was changed`);
    return Exit.usage;
  }
  if (error instanceof ScheduleSpecError) {
    line(`schedule error: ${error.message}`, 'nothing was created or changed; fix the flag and run again');
    return Exit.usage;
  }
  if (error instanceof UsageError) {
    line(error.message, error.hint);
    return Exit.usage;
  }
  if (error instanceof NoSuchRun) {
    line(error.message, 'see the runs with `objinfer list`');
    return Exit.usage;
  }
  if (error instanceof TemporalUnreachable || isTemporalUnavailable(error)) {
    line((error as Error).message.split('\n')[0]!, 'set TEMPORAL_ADDRESS (or a profile in temporal.toml), or unset it to use a local dev server');
    return Exit.temporalUnreachable;
  }
  if (error instanceof ObjinferError) {
    line(error.message);
    return Exit.failed;
  }
  if (error instanceof WorkflowFailedError && (error.cause instanceof CancelledFailure || error.cause instanceof TerminatedFailure)) {
    line(`the run was ${error.cause instanceof CancelledFailure ? 'cancelled' : 'terminated'}; finished batches are kept; run it again to go on`);
    return Exit.cancelled;
  }
  line(`pipeline failed: ${failureMessage(error)}`, 'see the run in the Temporal UI for the full history; fix the cause and run again (finished work is kept)');
  return Exit.failed;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (error) {
    process.exitCode = reportError(error);
  }
}
