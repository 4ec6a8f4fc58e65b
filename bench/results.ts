/**
 * bench/results/latest.json and latest.md. A partial run (`BENCH=pipeline`,
 * `BENCH_PIPELINE_IMAGES=200`) replaces only the rows it measured, by name, and every row
 * keeps the date and run count it was measured with, so the table never shows an old figure
 * under a new date.
 */

export interface Measured {
  /** ISO date (YYYY-MM-DD) of the bench run that produced the row. */
  date: string;
  /** How many runs the row's median is over (BENCH_RUNS). */
  runs: number;
}

export interface Row {
  group: string;
  benchmark: string;
  result: string;
  figures: Record<string, number>;
  measured?: Measured;
}

export interface Results {
  /** When the file was last written. */
  date: string;
  machine: { cpus: number; cpu?: string; memoryGiB: number; node: string };
  /** BENCH_RUNS of the newest bench run. */
  runs: number;
  rows: Row[];
}

/** The rows of a latest.json; rows written before rows carried their own date get the file's. */
export function previousRows(file: Partial<Results> | undefined): Row[] {
  const fallback: Measured | undefined = file?.date && file.runs ? { date: file.date.slice(0, 10), runs: file.runs } : undefined;
  return (file?.rows ?? []).filter((row) => row.group).map((row) => ({ ...row, measured: row.measured ?? fallback }));
}

/**
 * Fresh rows take the place of the previous rows of the same name; rows not measured again
 * stay where they were; new rows go to the end of their group. Groups keep `groupOrder`.
 */
export function mergeRows(previous: Row[], fresh: Row[], groupOrder: string[]): Row[] {
  const byName = new Map(fresh.map((row) => [row.benchmark, row]));
  const kept = previous.map((row) => byName.get(row.benchmark) ?? row);
  const names = new Set(previous.map((row) => row.benchmark));
  const added = fresh.filter((row) => !names.has(row.benchmark));
  const rank = (row: Row) => {
    const at = groupOrder.indexOf(row.group);
    return at < 0 ? groupOrder.length : at;
  };
  return [...kept, ...added].sort((a, b) => rank(a) - rank(b)); // stable: order within a group stays
}

/** latest.md: the newest run in the heading; a row from another run says when it was measured. */
export function markdownResults(results: Results): string {
  const { machine, rows } = results;
  const newest: Measured = { date: results.date.slice(0, 10), runs: results.runs };
  const when = (row: Row) => {
    const measured = row.measured ?? newest;
    if (measured.date === newest.date && measured.runs === newest.runs) return '';
    return ` (measured ${measured.date}, median of ${measured.runs} run${measured.runs === 1 ? '' : 's'})`;
  };
  return [
    `Measured ${newest.date} on ${machine.cpus} cores (${machine.cpu}), ${machine.memoryGiB} GiB, Node ${machine.node}; median of ${newest.runs} runs unless a row says otherwise.`,
    '',
    '| benchmark | result |',
    '| --- | --- |',
    ...rows.map((row) => `| ${row.benchmark} | ${row.result}${when(row)} |`),
    '',
  ].join('\n');
}
