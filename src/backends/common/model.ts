/**
 * Rules both backends share about models: how labels files are read, and what the
 * prediction version (the `model_version` column) is made of.
 */
import { createHash } from 'node:crypto';
import type { ModelSpec, RunSpec } from '../../config';

/**
 * One label per line, in output order. Line endings, surrounding blanks, a byte-order mark
 * and blank lines do not matter, so that re-saving the file does not make a new version.
 */
export function parseLabels(text: string): string[] {
  return text
    .replace(/^\uFEFF/, '')
    .split(/\r\n|\r|\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
}

/** Classes without a labels file are named by their index. */
export function labelOf(labels: readonly string[], index: number): string {
  return labels[index] ?? `class_${index}`;
}

/**
 * The prediction version: a hash of everything that changes a prediction. The model's
 * bytes (`modelDigest`, a hash of its files), the parsed labels, the input size, the
 * preserve-aspect flag, the output used, top-k and whether probabilities are kept.
 * Batch size, concurrency and names of tables do not change a prediction and are not in it.
 */
export function predictionVersion(modelDigest: string, labels: readonly string[] | undefined, spec: Pick<RunSpec, 'results'> & { model: ModelSpec }): string {
  const parts = {
    model: modelDigest,
    labels: labels ?? null,
    inputSize: spec.model.inputSize ?? null,
    preserveAspectRatio: spec.model.preserveAspectRatio,
    output: spec.model.output ?? null,
    topK: spec.results.topK,
    keepProbabilities: spec.results.keepProbabilities,
    // `auto` reads the choice off the model's bytes, which the version holds already; a choice
    // made by hand is part of it (so versions from before model.scores existed are unchanged).
    ...(spec.model.scores && spec.model.scores !== 'auto' ? { scores: spec.model.scores } : {}),
  };
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 12);
}

/** What to say about a model's outputs when choosing the one whose scores are used. */
export interface OutputChoice {
  name: string;
  why: string;
}

/**
 * Picks the output to read scores from: `model.output` when set, the only output when
 * there is one, else the first of shape [batch, classes] (with as many classes as there
 * are labels, when there is a labels file). The choice is named in the run's summary.
 */
export function chooseOutput(
  outputs: { name: string; rank?: number; classes?: number }[],
  wanted: string | undefined,
  labelCount?: number,
): OutputChoice | { error: string } {
  const names = outputs.map((o) => o.name);
  if (wanted) {
    if (!names.includes(wanted)) return { error: `model.output is "${wanted}" but the model's outputs are [${names.join(', ')}]; set it to one of them` };
    return { name: wanted, why: 'model.output' };
  }
  if (outputs.length === 1) return { name: outputs[0]!.name, why: 'the only output' };
  const twoDimensional = outputs.filter((o) => o.rank === 2);
  const fitting = labelCount === undefined ? twoDimensional : twoDimensional.filter((o) => o.classes === undefined || o.classes === labelCount);
  const scores = fitting[0];
  if (!scores) {
    const what = labelCount === undefined ? '[batch, classes]' : `[batch, ${labelCount}] (one score per label)`;
    return { error: `none of the model's outputs [${names.join(', ')}] is ${what}; set model.output to the one that holds class scores` };
  }
  return {
    name: scores.name,
    why: `the first ${labelCount === undefined ? '[batch, classes]' : `[batch, ${labelCount}]`} output of [${names.join(', ')}] (set model.output to choose another)`,
  };
}

/** What a model's scores are: probabilities as given, or logits a softmax turns into them. */
export type ScoreKind = 'probabilities' | 'logits';

/**
 * Reads the kind off a model's outputs for a few inputs: rows of values in [0, 1] that sum to
 * 1 (within 1e-3) are probabilities; anything else (negative values, sums that are not 1) logits.
 */
export function scoreKindOf(rows: ArrayLike<number>[]): ScoreKind {
  for (const row of rows) {
    let sum = 0;
    for (let i = 0; i < row.length; i++) {
      const value = row[i]!;
      if (!(value >= -1e-6 && value <= 1 + 1e-6)) return 'logits';
      sum += value;
    }
    if (Math.abs(sum - 1) > 1e-3) return 'logits';
  }
  return 'probabilities';
}

/** A numerically stable softmax, in float64: exp(x - max) / sum, as NumPy and SciPy compute it. */
export function softmax(logits: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  const out = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += out[i] = Math.exp(logits[i]! - max);
  for (let i = 0; i < out.length; i++) out[i]! /= sum;
  return out;
}
