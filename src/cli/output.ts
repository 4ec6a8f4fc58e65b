/**
 * What the CLI prints: for people, tables that fit the terminal and never carry raw
 * control characters; for scripts, typed JSON, JSON Lines, and CSV that spreadsheets open
 * safely (RFC 4180 quoting; text cells that would start a formula are neutralised).
 */
import { formatDuration } from '../format';
import type { PipelineProgress, PipelineSummary } from '../workflows/contract';

export const FORMATS = ['table', 'json', 'jsonl', 'csv'] as const;
export type Format = (typeof FORMATS)[number];

export type Cell = string | number | boolean | null | undefined | Cell[] | { [key: string]: Cell };
export type Row = Record<string, Cell>;

/** Control characters (and DEL, C1) shown as escapes: names are data, not terminal commands. */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => {
    const code = c.charCodeAt(0);
    return code === 0x0a ? '\\n' : code === 0x0d ? '\\r' : code === 0x09 ? '\\t' : `\\x${code.toString(16).padStart(2, '0')}`;
  });
}

/** A cell as text for tables and CSV; lists and objects as compact JSON. */
function cellText(value: Cell): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** Shortens to `width` characters, marking the cut. */
export function truncate(text: string, width: number): string {
  if (width <= 0) return '';
  return text.length <= width ? text : `${text.slice(0, Math.max(0, width - 1))}…`;
}

/**
 * Columns padded to their widest cell. With `maxWidth`, the widest columns are narrowed
 * (cells cut with "…") until each line fits.
 */
export function table(rows: Row[], options: { columns?: string[]; maxWidth?: number } = {}): string {
  if (rows.length === 0) return '(no rows)';
  const cols = options.columns ?? Object.keys(rows[0]!);
  const cells = rows.map((r) => cols.map((c) => printable(cellText(r[c]))));
  const width = cols.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i]!.length)));
  if (options.maxWidth) {
    const total = () => width.reduce((a, b) => a + b, 0) + 2 * (cols.length - 1);
    while (total() > options.maxWidth) {
      const widest = width.indexOf(Math.max(...width));
      if (width[widest]! <= 8) break;
      width[widest]!--;
    }
  }
  const line = (values: string[]) =>
    values
      .map((cell, i) => truncate(cell, width[i]!).padEnd(width[i]!))
      .join('  ')
      .trimEnd();
  return [line(cols), line(width.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
}

/** A text cell that a spreadsheet would read as a formula gets a leading apostrophe. */
function csvCell(value: Cell): string {
  let text = cellText(value);
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function csv(rows: Row[], columns?: string[]): string {
  const cols = columns ?? (rows[0] ? Object.keys(rows[0]) : []);
  if (cols.length === 0) return '';
  return [cols.join(','), ...rows.map((r) => cols.map((c) => csvCell(r[c])).join(','))].join('\r\n') + '\r\n';
}

/** Prints rows in the chosen format; `table` gets the terminal's width when stdout is one. */
export function render(rows: Row[], format: Format, options: { columns?: string[] } = {}): string {
  switch (format) {
    case 'json':
      return `${JSON.stringify(rows, null, 2)}\n`;
    case 'jsonl':
      return rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : '');
    case 'csv':
      return csv(rows, options.columns);
    case 'table':
      return `${table(rows, { ...options, maxWidth: terminalWidth() })}\n`;
  }
}

/** One object (a summary, a status) in the chosen format: JSON as is, or a table of one row. */
export function renderOne(value: Row, format: Format, asText: () => string): string {
  if (format === 'json') return `${JSON.stringify(value, null, 2)}\n`;
  if (format === 'jsonl') return `${JSON.stringify(value)}\n`;
  if (format === 'csv') return csv([flatten(value)]);
  return `${asText()}\n`;
}

/** Nested values as dotted columns, for CSV. */
function flatten(value: Row, prefix = '', out: Row = {}): Row {
  for (const [key, cell] of Object.entries(value)) {
    const name = prefix ? `${prefix}.${key}` : key;
    if (cell && typeof cell === 'object' && !Array.isArray(cell)) flatten(cell as Row, name, out);
    else out[name] = cell;
  }
  return out;
}

export function terminalWidth(): number | undefined {
  return process.stdout.isTTY ? process.stdout.columns : undefined;
}

export function progressLine(p: PipelineProgress): string {
  const paused = p.control?.paused ? ` (paused${p.control.note ? `: ${p.control.note}` : ''}; \`objinfer resume\` goes on)` : '';
  if (p.stage !== 'infer' && p.stage !== 'done') return `${p.stage}...${paused}`;
  const eta = p.etaSeconds && !paused ? `, ETA ${formatDuration(p.etaSeconds * 1000)}` : '';
  return `${p.stage}: batches ${p.batchesDone}/${p.batchesTotal}, images ${p.imagesDone}/${p.imagesTotal}, failures ${p.imagesFailed}${eta}${paused}`;
}

/** The summary as typed data: what `-o json` prints. */
export function summaryRecord(s: PipelineSummary): Row {
  return {
    pipeline: s.pipeline,
    workflowId: s.workflowId,
    runId: s.runId,
    predictionVersion: s.modelVersion,
    modelOutput: s.modelOutput,
    objectsSeen: s.objectsSeen,
    predicted: s.predicted,
    alreadyPredicted: s.alreadyDone,
    failedNow: s.failed,
    failedEarlier: s.failedBefore,
    batches: s.batches,
    labelCounts: Object.entries(s.labelCounts)
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .map(([label, count]) => ({ label, count })),
    resultsTable: s.resultsTable,
    errorsTable: s.errorsTable,
    durationMs: s.durationMs,
    inferDurationMs: s.inferDurationMs,
    stoppedAtBudget: s.stoppedAtBudget ?? null,
    provisioned: s.provisioned.map((p) => ({ step: p.step, action: p.action, detail: p.detail })),
    warnings: s.warnings,
  };
}

/** Words after a label, wrapped to `width` with continuation lines under the first word. */
export function wrap(prefix: string, words: string[], width: number): string {
  const indent = ' '.repeat(prefix.length);
  const lines: string[] = [];
  let line = prefix;
  for (const word of words) {
    if (line.length > prefix.length && line.length + 1 + word.length > width) {
      lines.push(line);
      line = indent + word;
    } else line += (line.length > prefix.length ? ' ' : '') + word;
  }
  lines.push(line);
  return lines.join('\n');
}

/** A comma-separated list after a label, wrapped like `wrap`. */
export function wrapList(prefix: string, items: string[], width: number): string {
  return wrap(
    prefix,
    items.map((item, i) => (i < items.length - 1 ? `${item},` : item)),
    width,
  );
}

/** The summary for people, no line wider than the terminal (100 columns when not on one). */
/**
 * A command to suggest, with the `--config` that makes it read the same pipeline where it is
 * printed (without it, `objinfer results` reads ./objinfer.yaml, maybe another pipeline's).
 */
export function commandHint(command: string, configFile?: string): string {
  return `objinfer ${command}${configFile ? ` --config ${configFile}` : ''}`;
}

export function summaryText(s: PipelineSummary, width = terminalWidth() ?? 100, configFile?: string): string {
  const labels = Object.entries(s.labelCounts)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([label, n]) => `${printable(JSON.stringify(label))} ${n}`);
  const changes = new Map<string, number>();
  for (const p of s.provisioned) {
    if (p.action === 'created' || p.action === 'updated') changes.set(`${p.step} ${p.action}`, (changes.get(`${p.step} ${p.action}`) ?? 0) + 1);
  }
  const created = [...changes].map(([what, n]) => (n > 1 ? `${what} x${n}` : what));
  const field = (name: string) => `  ${`${name}:`.padEnd(20)}`;
  const shownLabels = labels.length > 12 ? [...labels.slice(0, 12), `and ${labels.length - 12} more`] : labels;
  return [
    truncate(
      `pipeline ${s.pipeline} finished in ${formatDuration(s.durationMs)} (prediction version ${s.modelVersion}, output ${s.modelOutput}` +
        `${s.modelScores === 'logits' ? ': logits, scores are their softmax' : ''})`,
      width,
    ),
    `${field('images seen')}${s.objectsSeen}`,
    `${field('predicted now')}${s.predicted}`,
    ...(labels.length ? [wrapList(field('  by label'), shownLabels, width)] : []),
    `${field('already predicted')}${s.alreadyDone}`,
    `${field('failed now')}${s.failed}${s.failed ? ` (why: ${commandHint('results --errors', configFile)})` : ''}`,
    `${field('failed earlier')}${s.failedBefore}${s.failedBefore ? ` (not retried: ${commandHint('run --retry-failed', configFile ?? 'FILE')})` : ''}`,
    `${field('batches')}${s.batches}`,
    ...(s.stoppedAtBudget
      ? [
          `${field('stopped at budget')}${s.stoppedAtBudget.maxImages} images; ${s.stoppedAtBudget.leftPending} left pending (${commandHint('run', configFile ?? 'FILE')} goes on)`,
        ]
      : []),
    wrapList(field('provisioned'), created.length ? created : ['everything already in place'], width),
    truncate(`${field('results table')}${s.resultsTable}`, width),
    ...s.warnings.map((w) =>
      wrap('  warning: ', printable(w.replaceAll('objinfer results --errors', commandHint('results --errors', configFile))).split(' '), width),
    ),
  ].join('\n');
}

/** The run's summary, for people or scripts; a hint to the errors when images failed. `configFile` as the user gave it. */
export function printSummary(summary: PipelineSummary, format: Format, configFile?: string): void {
  process.stdout.write(renderOne(summaryRecord(summary), format, () => summaryText(summary, undefined, configFile)));
  if (summary.failed > 0 && format === 'table') {
    console.error(`objinfer: warning: ${summary.failed} image(s) failed in this run; see why with \`${commandHint('results --errors', configFile)}\``);
  }
}
