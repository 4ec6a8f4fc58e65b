/** Plain-text tables, CSV and summaries for the terminal. */
import type { PipelineProgress, PipelineSummary } from '../workflows/contract';
import { formatDuration } from '../duration';

export function table(rows: Record<string, string>[], columns?: string[]): string {
  if (rows.length === 0) return '(no rows)';
  const cols = columns ?? Object.keys(rows[0]!);
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: string[]) => cells.map((cell, i) => cell.padEnd(width[i]!)).join('  ').trimEnd();
  return [line(cols), line(width.map((w) => '-'.repeat(w))), ...rows.map((r) => line(cols.map((c) => r[c] ?? '')))].join('\n');
}

export function csv(rows: Record<string, string>[]): string {
  if (rows.length === 0) return '';
  const cols = Object.keys(rows[0]!);
  const cell = (value: string) => (/[",\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value);
  return [cols.join(','), ...rows.map((r) => cols.map((c) => cell(r[c] ?? '')).join(','))].join('\n');
}

export function progressLine(p: PipelineProgress): string {
  if (p.stage !== 'infer' && p.stage !== 'done') return `${p.stage}...`;
  const eta = p.etaSeconds ? `, ETA ${formatDuration(p.etaSeconds * 1000)}` : '';
  return `${p.stage}: batches ${p.batchesDone}/${p.batchesTotal}, images ${p.imagesDone}/${p.imagesTotal}, failures ${p.imagesFailed}${eta}`;
}

export function summaryText(s: PipelineSummary): string {
  const labels = Object.entries(s.labelCounts)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([label, n]) => `${label} ${n}`)
    .join(', ');
  const changes = new Map<string, number>();
  for (const p of s.provisioned) {
    if (p.action === 'created' || p.action === 'updated') changes.set(`${p.step} ${p.action}`, (changes.get(`${p.step} ${p.action}`) ?? 0) + 1);
  }
  const created = [...changes].map(([what, n]) => (n > 1 ? `${what} x${n}` : what));
  return [
    `pipeline ${s.pipeline} finished in ${formatDuration(s.durationMs)} (model version ${s.modelVersion})`,
    `  images seen:        ${s.objectsSeen}`,
    `  predicted now:      ${s.predicted}${labels ? ` (${labels})` : ''}`,
    `  already predicted:  ${s.alreadyDone}`,
    `  failed:             ${s.failed}${s.failed ? ` (see ${s.errorsTable}: objinfer results --errors)` : ''}`,
    `  batches:            ${s.batches}`,
    `  provisioned:        ${created.length ? created.join(', ') : 'everything already in place'}`,
    `  results table:      ${s.resultsTable}`,
    ...s.warnings.map((w) => `  warning: ${w}`),
  ].join('\n');
}
