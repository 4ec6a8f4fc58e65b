/**
 * Two prediction versions side by side, from the warehouse's counts: how many images changed
 * top-1 and between which labels, and with ground truth both accuracies and McNemar's test on
 * the paired outcomes (statsmodels' definitions: the exact binomial test and the chi-square
 * with continuity correction; test/evaluation.test.ts holds both to statsmodels).
 */
import { byCodePoint } from './metrics';
import type { ComparisonCounts } from './types';

export interface McNemar {
  /** Images the first version got right and the second wrong, and the reverse. */
  aRightBWrong: number;
  aWrongBRight: number;
  /** (|b - c| - 1)² / (b + c); null when no image differs. */
  chiSquare: number | null;
  chiSquarePValue: number | null;
  /** Two-sided binomial test of min(b, c) in b + c draws at one half. */
  exactPValue: number;
  /** The exact test below 25 discordant images, else the chi-square; at the 5% level. */
  test: 'exact' | 'chi-square';
  significant: boolean;
}

export interface Comparison {
  versions: [string, string];
  /** Current images, and how many have a prediction of both, only one, or neither version. */
  images: number;
  both: number;
  onlyA: number;
  onlyB: number;
  neither: number;
  /** Of `both`, how many got another top-1 label. */
  changed: number;
  /** Rows: the first version's label; columns: the second's; over the images with both. */
  flips: { labels: string[]; matrix: number[][] };
  /** With ground truth, over the images with both predictions and a truth. */
  groundTruth?: { evaluated: number; accuracy: [number | null, number | null]; mcnemar: McNemar };
}

export function comparisonOf(counts: ComparisonCounts, versions: [string, string], withTruth: boolean): Comparison {
  const count = (keep: (g: ComparisonCounts['groups'][number]) => boolean) => counts.groups.filter(keep).reduce((n, g) => n + g.images, 0);
  const both = counts.groups.filter((g) => g.a !== null && g.b !== null) as { expected: string | null; a: string; b: string; images: number }[];
  const labels = [...new Set(both.flatMap((g) => [g.a, g.b]))].sort(byCodePoint);
  const index = new Map(labels.map((l, i) => [l, i]));
  const matrix = labels.map(() => labels.map(() => 0));
  for (const g of both) matrix[index.get(g.a)!]![index.get(g.b)!]! += g.images;
  const comparison: Comparison = {
    versions,
    images: count(() => true),
    both: count((g) => g.a !== null && g.b !== null),
    onlyA: count((g) => g.a !== null && g.b === null),
    onlyB: count((g) => g.a === null && g.b !== null),
    neither: count((g) => g.a === null && g.b === null),
    changed: count((g) => g.a !== null && g.b !== null && g.a !== g.b),
    flips: { labels, matrix },
  };
  if (!withTruth) return comparison;
  const truthful = both.filter((g) => g.expected !== null);
  const sum = (keep: (g: (typeof truthful)[number]) => boolean) => truthful.filter(keep).reduce((n, g) => n + g.images, 0);
  const evaluated = sum(() => true);
  const ratio = (n: number) => (evaluated === 0 ? null : n / evaluated);
  const b = sum((g) => g.a === g.expected && g.b !== g.expected);
  const c = sum((g) => g.a !== g.expected && g.b === g.expected);
  return {
    ...comparison,
    groundTruth: { evaluated, accuracy: [ratio(sum((g) => g.a === g.expected)), ratio(sum((g) => g.b === g.expected))], mcnemar: mcnemar(b, c) },
  };
}

export function mcnemar(b: number, c: number): McNemar {
  const n = b + c;
  const chiSquare = n === 0 ? null : (Math.abs(b - c) - 1) ** 2 / n;
  const chiSquarePValue = chiSquare === null ? null : erfc(Math.sqrt(chiSquare / 2)); // the chi-square survival with 1 degree of freedom
  const exactPValue = Math.min(1, 2 * binomialCdfHalf(Math.min(b, c), n)); // min(b, c) ≤ n / 2
  const test = n < 25 ? 'exact' : 'chi-square';
  const p = test === 'exact' ? exactPValue : chiSquarePValue!;
  return { aRightBWrong: b, aWrongBRight: c, chiSquare, chiSquarePValue, exactPValue, test, significant: p < 0.05 };
}

/**
 * P(X ≤ k) for X ~ Binomial(n, 1/2), summed in logs (2^-n underflows past n = 1074). Here
 * k ≤ n / 2, where the terms grow with i, so the last is the largest: the sum is scaled by it.
 */
export function binomialCdfHalf(k: number, n: number): number {
  const logOf = (i: number, log: number) => log + Math.log((n - i) / (i + 1));
  let top = -n * Math.LN2;
  for (let i = 0; i < k; i++) top = logOf(i, top);
  let sum = 0;
  let log = -n * Math.LN2;
  for (let i = 0; i <= k; i++) {
    sum += Math.exp(log - top);
    log = logOf(i, log);
  }
  return Math.exp(top) * sum;
}

/** The complementary error function: a series below 2 (where 1 - erf loses nothing that matters), a continued fraction above. */
export function erfc(z: number): number {
  if (z < 0) return 2 - erfc(-z);
  if (z < 2) {
    let term = z;
    let sum = z;
    for (let i = 1; Math.abs(term) > 1e-17 * Math.abs(sum); i++) {
      term *= (-z * z) / i;
      sum += term / (2 * i + 1);
    }
    return 1 - (2 / Math.sqrt(Math.PI)) * sum;
  }
  let fraction = 0;
  for (let i = 120; i >= 1; i--) fraction = i / 2 / (z + fraction);
  return Math.exp(-z * z) / Math.sqrt(Math.PI) / (z + fraction);
}
