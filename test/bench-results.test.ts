/**
 * bench/results.ts: a partial bench run (one group, or one image count of a group) replaces
 * only the rows it measured, and rows kept from an earlier run keep their date in latest.md.
 */
import { markdownResults, mergeRows, previousRows, type Results, type Row } from '../bench/results';

const ORDER = ['ceiling', 'pipeline', 'small'];
const machine = { cpus: 2, cpu: 'test cpu', memoryGiB: 24, node: 'v20' };

function row(group: string, benchmark: string, result: string, date: string, runs = 3): Row {
  return { group, benchmark, result, figures: {}, measured: { date, runs } };
}

const earlier = [
  row('ceiling', 'ceiling: batch 16', '38.1 img/s', '2026-11-24'),
  row('pipeline', 'pipeline: 200 JPEGs', '32.5 img/s', '2026-11-24'),
  row('pipeline', 'pipeline: 2000 JPEGs', '32.4 img/s', '2026-11-24'),
  row('small', 'small: 10 JPEGs', '1.06 s', '2026-11-24'),
];

test('a run of one image count replaces that row only; the other count of the same group stays, in place', () => {
  const merged = mergeRows(earlier, [row('pipeline', 'pipeline: 200 JPEGs', '33.0 img/s', '2026-11-25', 5)], ORDER);
  expect(merged.map((r) => [r.benchmark, r.result, r.measured?.date])).toEqual([
    ['ceiling: batch 16', '38.1 img/s', '2026-11-24'],
    ['pipeline: 200 JPEGs', '33.0 img/s', '2026-11-25'],
    ['pipeline: 2000 JPEGs', '32.4 img/s', '2026-11-24'],
    ['small: 10 JPEGs', '1.06 s', '2026-11-24'],
  ]);
});

test('rows never measured before go to the end of their group, in group order', () => {
  const merged = mergeRows(
    earlier,
    [row('small', 'small: 20 JPEGs', '1.2 s', '2026-11-25'), row('pipeline', 'pipeline: 500 JPEGs', '32.6 img/s', '2026-11-25')],
    ORDER,
  );
  expect(merged.map((r) => r.benchmark)).toEqual([
    'ceiling: batch 16',
    'pipeline: 200 JPEGs',
    'pipeline: 2000 JPEGs',
    'pipeline: 500 JPEGs',
    'small: 10 JPEGs',
    'small: 20 JPEGs',
  ]);
});

test('latest.md dates the table by the newest run and marks each row measured at another date or run count', () => {
  const rows = mergeRows(earlier, [row('pipeline', 'pipeline: 200 JPEGs', '33.0 img/s', '2026-11-25', 5)], ORDER);
  const md = markdownResults({ date: '2026-11-25T05:00:00.000Z', machine, runs: 5, rows });
  expect(md.split('\n')[0]).toBe('Measured 2026-11-25 on 2 cores (test cpu), 24 GiB, Node v20; median of 5 runs unless a row says otherwise.');
  expect(md).toContain('| pipeline: 200 JPEGs | 33.0 img/s |\n');
  expect(md).toContain('| pipeline: 2000 JPEGs | 32.4 img/s (measured 2026-11-24, median of 3 runs) |\n');
});

test('rows of a latest.json written before rows carried a date take the date and run count of the file', () => {
  const legacy: Partial<Results> = {
    date: '2026-11-20T10:00:00.000Z',
    runs: 3,
    rows: [{ group: 'small', benchmark: 'small: 10 JPEGs', result: '1.04 s', figures: {} }],
  };
  expect(previousRows(legacy)).toEqual([
    { group: 'small', benchmark: 'small: 10 JPEGs', result: '1.04 s', figures: {}, measured: { date: '2026-11-20', runs: 3 } },
  ]);
  expect(previousRows(undefined)).toEqual([]);
});
