/** What `objinfer results`, `report` and `export` do (their flags are in ../commands/results). */
import { relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { readErrors, readResults } from '../../reads';
import { loadConfig } from '../../config';
import { ERROR_COLUMNS, errorRecord, exportRows, RESULT_COLUMNS, resultRecord } from '../../exports';
import type { ExportFlags, ReportFlags, ResultFlags } from '../commands/results';
import { UsageError } from '../common';
import { findConfig, findConfigFile, outputPath } from '../context';
import { render, renderOne, table, terminalWidth, type Row } from '../output';

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

export async function printResults(flags: ResultFlags): Promise<void> {
  const spec = findConfig(flags.config, { checkFiles: false });
  const filter = {
    limit: flags.all ? undefined : flags.limit,
    label: flags.label,
    minScore: flags.minScore,
    maxScore: flags.maxScore,
    runId: flags.run,
    since: flags.since,
    history: flags.history,
  };
  if (flags.errors) {
    const rows = errorRows(await readErrors(spec, filter));
    process.stdout.write(render(rows, flags.output, { columns: flags.output === 'table' ? ['uri', 'kind', 'error', 'failed_at'] : [...ERROR_COLUMNS] }));
    return;
  }
  const rows = resultRows(await readResults(spec, filter));
  process.stdout.write(flags.output === 'table' ? render(resultTable(rows), 'table') : render(rows, flags.output, { columns: [...RESULT_COLUMNS] }));
}

export async function printDemoResults(configFile: string, imagesDir: string, shown: number, shownConfig = configFile): Promise<void> {
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
  if (rows.length > shown) console.log(`... ${rows.length - shown} more: objinfer results --config ${shownConfig} --all`);
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

export async function report(options: ReportFlags): Promise<void> {
  const { spec, file } = findConfigFile(options.config, { checkFiles: false });
  const out = outputPath(options.out ?? `${spec.name}-report.html`, spec, file);
  const progress = process.stderr.isTTY ? (done: number, total: number) => process.stderr.write(`\rthumbnails ${done}/${total}`) : undefined;
  const { writeReport } = await import('../../report'); // thumbnails need sharp: only this command loads it
  const data = await writeReport(spec, { out, runId: options.run, history: options.history, compare: options.compare, onProgress: progress });
  if (progress) process.stderr.write('\n');
  const record = { out, url: pathToFileURL(out).href, predicted: data.cards.length, failed: data.errors.length };
  process.stdout.write(renderOne(record, options.output, () => `report of ${record.predicted} predictions and ${record.failed} errors:\n  ${record.url}`));
}

export async function exportTable(options: ExportFlags): Promise<void> {
  const { spec, file } = findConfigFile(options.config, { checkFiles: false });
  if (options.errors && (options.label !== undefined || options.minScore !== undefined || options.maxScore !== undefined)) {
    throw new UsageError('--label, --min-score and --max-score filter predictions; the errors table has no labels or scores', 'drop them, or drop --errors');
  }
  if (options.errors && (options.format === 'label-studio' || options.format === 'fiftyone')) {
    throw new UsageError(
      `--format ${options.format} exports predictions for review; the errors table has none`,
      'use --format csv, jsonl or parquet with --errors',
    );
  }
  const extension = { parquet: '.parquet', csv: '.csv', jsonl: '.jsonl', 'label-studio': '.label-studio.json', fiftyone: '-fiftyone' }[options.format];
  const folder = options.format === 'fiftyone';
  const out = outputPath(options.out ?? `${spec.name}-${options.errors ? 'errors' : 'results'}${extension}`, spec, file, folder ? 'folder' : 'file');
  const filter = {
    label: options.label,
    minScore: options.minScore,
    maxScore: options.maxScore,
    runId: options.run,
    since: options.since,
    history: options.history,
  };
  const outcome = await exportRows(spec, { format: options.format, out, errors: options.errors, filter });
  process.stdout.write(renderOne({ ...outcome }, options.output, () => exportSummary(outcome)));
}

function exportSummary(outcome: Awaited<ReturnType<typeof exportRows>>): string {
  const truth = outcome.withGroundTruth === undefined ? '' : `, ${outcome.withGroundTruth} with their ground truth`;
  if (outcome.format !== 'fiftyone') return `${outcome.rows} ${outcome.table} rows written to ${outcome.out} (${outcome.format}${truth})`;
  const fo = `fo.types.FiftyOneImageClassificationDataset, data_path="data.json"`;
  const lines = [
    `${outcome.rows} images of version ${outcome.modelVersion ?? '-'} written to ${outcome.out} (FiftyOne${truth}); in Python:`,
    '  import fiftyone as fo',
    `  dataset = fo.Dataset.from_dir(dataset_dir=${JSON.stringify(outcome.out)}, dataset_type=${fo}, label_field="predictions")`,
  ];
  if (outcome.withGroundTruth !== undefined)
    lines.push(
      `  dataset.merge_dir(dataset_dir=${JSON.stringify(outcome.out)}, dataset_type=${fo}, labels_path="ground_truth.json", label_field="ground_truth")`,
    );
  return lines.join('\n');
}
