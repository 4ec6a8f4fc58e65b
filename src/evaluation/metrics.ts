/**
 * The metrics of an evaluation, derived from the warehouse's counts (one group per truth,
 * prediction and rank, so the work in Node grows with the classes, not the images). The
 * definitions are scikit-learn's: labels sorted, precision and recall 0 where undefined
 * (zero_division=0), macro and support-weighted averages over the union of true and
 * predicted labels; test/evaluation.test.ts holds them to scikit-learn.
 */
import type { EvaluationCounts } from './types';

export interface ClassMetrics {
  label: string;
  precision: number;
  recall: number;
  f1: number;
  /** Images whose truth is this label. */
  support: number;
  /** Images the model gave this label. */
  predicted: number;
}

export interface Averages {
  precision: number;
  recall: number;
  f1: number;
}

export interface Evaluation {
  modelVersion: string | null;
  /** Images in the object table (current generations). */
  images: number;
  withoutGroundTruth: number;
  /** With ground truth, but no prediction of this version (failed, or not yet run). */
  withoutPrediction: number;
  /** With both: what the metrics are over. */
  evaluated: number;
  accuracy: number | null;
  /** Fraction whose truth is in the first k of the stored top-k, for k = 1 .. topK. */
  topK: { k: number; accuracy: number }[];
  classes: ClassMetrics[];
  macro: Averages;
  weighted: Averages;
  /** Rows are truth, columns the prediction, both in `confusion.labels` order. */
  confusion: { labels: string[]; matrix: number[][] };
  /** Ground-truth names the label map has no entry for (only when a map is given). */
  unmapped: string[];
}

const ratio = (a: number, b: number) => (b === 0 ? 0 : a / b);
/** Labels in code-point order, as Python's sorted() gives them (scikit-learn's label order). */
export const byCodePoint = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export function evaluationOf(counts: EvaluationCounts, topK: number, labelMap: [string, string][]): Evaluation {
  const images = counts.groups.reduce((n, g) => n + g.images, 0);
  const withTruth = counts.groups.filter((g) => g.truth !== null);
  const scored = withTruth.filter((g) => g.predicted !== null) as { expected: string; predicted: string; rank: number | null; images: number }[];
  const evaluated = scored.reduce((n, g) => n + g.images, 0);
  const sum = (keep: (g: (typeof scored)[number]) => boolean) => scored.filter(keep).reduce((n, g) => n + g.images, 0);

  const labels = [...new Set(scored.flatMap((g) => [g.expected, g.predicted]))].sort(byCodePoint);
  const index = new Map(labels.map((l, i) => [l, i]));
  const matrix = labels.map(() => labels.map(() => 0));
  for (const g of scored) matrix[index.get(g.expected)!]![index.get(g.predicted)!]! += g.images;

  const classes = labels.map((label, i): ClassMetrics => {
    const tp = matrix[i]![i]!;
    const support = matrix[i]!.reduce((a, b) => a + b, 0);
    const predicted = matrix.reduce((n, row) => n + row[i]!, 0);
    const precision = ratio(tp, predicted);
    const recall = ratio(tp, support);
    return { label, precision, recall, f1: ratio(2 * precision * recall, precision + recall), support, predicted };
  });
  const average = (weight: (c: ClassMetrics) => number): Averages => {
    const total = classes.reduce((n, c) => n + weight(c), 0);
    const mean = (pick: (c: ClassMetrics) => number) =>
      ratio(
        classes.reduce((n, c) => n + weight(c) * pick(c), 0),
        total,
      );
    return { precision: mean((c) => c.precision), recall: mean((c) => c.recall), f1: mean((c) => c.f1) };
  };

  const mapped = new Set(labelMap.map(([from]) => from));
  const truths = [...new Set(withTruth.map((g) => g.truth!))].sort(byCodePoint);
  return {
    modelVersion: counts.modelVersion,
    images,
    withoutGroundTruth: images - withTruth.reduce((n, g) => n + g.images, 0),
    withoutPrediction: withTruth.filter((g) => g.predicted === null).reduce((n, g) => n + g.images, 0),
    evaluated,
    accuracy: evaluated === 0 ? null : sum((g) => g.expected === g.predicted) / evaluated,
    topK: evaluated === 0 ? [] : Array.from({ length: topK }, (_, i) => ({ k: i + 1, accuracy: sum((g) => g.rank !== null && g.rank <= i + 1) / evaluated })),
    classes,
    macro: average(() => 1),
    weighted: average((c) => c.support),
    confusion: { labels, matrix },
    unmapped: labelMap.length === 0 ? [] : truths.filter((t) => !mapped.has(t)),
  };
}

/**
 * The confusion matrix cut to the `keep` classes with the most support; the others summed
 * into one row and column named `other`, so that it fits a terminal or a report.
 */
export function topConfusion(confusion: Evaluation['confusion'], keep: number, other = '(other)'): Evaluation['confusion'] {
  const { labels, matrix } = confusion;
  if (labels.length <= keep + 1) return confusion;
  const support = labels.map((_, i) => matrix[i]!.reduce((a, b) => a + b, 0));
  const kept = labels
    .map((_, i) => i)
    .sort((a, b) => support[b]! - support[a]! || a - b)
    .slice(0, keep)
    .sort((a, b) => a - b);
  const slot = new Map(kept.map((i, s) => [i, s]));
  const size = kept.length + 1;
  const cut = Array.from({ length: size }, () => new Array<number>(size).fill(0));
  matrix.forEach((row, i) => row.forEach((n, j) => (cut[slot.get(i) ?? kept.length]![slot.get(j) ?? kept.length]! += n)));
  return { labels: [...kept.map((i) => labels[i]!), other], matrix: cut };
}
