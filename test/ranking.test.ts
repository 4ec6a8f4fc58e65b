/**
 * Ranking a row of class scores (topK in src/backends/local/runtime.ts): the k best classes,
 * highest score first, ties in index order, checked against the plain definition (sort
 * every class) over random, tie-heavy and ordered rows.
 */
import { topK } from '../src/backends/local/runtime';
import { seededRandom } from '../src/models/random';

/** The definition: every class sorted by score, then by index. */
function bySorting(scores: ArrayLike<number>, k: number): number[] {
  return Array.from({ length: scores.length }, (_, i) => i)
    .sort((a, b) => scores[b]! - scores[a]! || a - b)
    .slice(0, k);
}

type Row = { name: string; scores: Float32Array };

function rows(): Row[] {
  const next = seededRandom(42); // the same rows on every machine, so a failure can be made again
  const made: Row[] = [];
  for (const n of [0, 1, 2, 7, 64, 1000]) {
    made.push({ name: `${n} random`, scores: Float32Array.from({ length: n }, next) });
    // Three values only: most classes tie with many others.
    made.push({ name: `${n} ties`, scores: Float32Array.from({ length: n }, () => Math.floor(next() * 3) / 2) });
    made.push({ name: `${n} rising`, scores: Float32Array.from({ length: n }, (_, i) => i) });
    made.push({ name: `${n} falling`, scores: Float32Array.from({ length: n }, (_, i) => -i) });
    made.push({ name: `${n} equal`, scores: new Float32Array(n).fill(0.25) });
    made.push({ name: `${n} signed`, scores: Float32Array.from({ length: n }, () => (next() - 0.5) * 1e6) });
  }
  return made;
}

const ks = [1, 2, 5, 100, 1000, 1003];

test.each(rows().flatMap((row) => ks.map((k) => [row.name, k, row] as const)))(
  '%s scores, k = %i: the same classes in the same order as sorting every class',
  (_name, k, row) => {
    const labels = Array.from({ length: row.scores.length }, (_, i) => `label ${i}`);
    const ranked = topK(row.scores, labels, k);
    const expected = bySorting(row.scores, k);
    expect(ranked.map((r) => r.index)).toEqual(expected);
    expect(ranked.map((r) => r.label)).toEqual(expected.map((i) => `label ${i}`));
    expect(ranked.map((r) => r.score)).toEqual(expected.map((i) => row.scores[i]));
  },
);

test('classes beyond the labels file are named by their index', () => {
  expect(topK(Float32Array.from([0.1, 0.7, 0.2]), ['cat'], 2)).toEqual([
    { label: 'class_1', index: 1, score: Float32Array.from([0.7])[0] },
    { label: 'class_2', index: 2, score: Float32Array.from([0.2])[0] },
  ]);
});
