/** The Python references, from the tools venv: scikit-learn's metrics of a classification (sklearn_metrics.py) and statsmodels' McNemar test. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { PROJECT_ROOT } from './paths';

/** The version scripts/setup-test-deps.sh installs. */
export const SKLEARN_VERSION = '1.5.2';

export interface SklearnMetrics {
  accuracy: number;
  topK: number[];
  labels: string[];
  precision: number[];
  recall: number[];
  f1: number[];
  support: number[];
  macro: { precision: number; recall: number; f1: number };
  weighted: { precision: number; recall: number; f1: number };
  confusion: number[][];
}

export interface Classified {
  yTrue: string[];
  yPred: string[];
  topK: string[][];
  k: number;
}

export function sklearnMetrics(data: Classified): SklearnMetrics {
  const python = join(PROJECT_ROOT, '.objinfer', 'tools', 'venv', 'bin', 'python');
  const script = join(PROJECT_ROOT, 'test', 'support', 'sklearn_metrics.py');
  const input = JSON.stringify({ y_true: data.yTrue, y_pred: data.yPred, top_k: data.topK, k: data.k });
  const result = spawnSync(python, [script, SKLEARN_VERSION], { input, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (result.status !== 0) throw new Error(`scikit-learn failed: ${result.stderr || result.error}`);
  return JSON.parse(result.stdout) as SklearnMetrics;
}

/** The largest absolute difference between objinfer's evaluation and scikit-learn's, over every number both give. */
export function largestDifference(
  ours: {
    accuracy: number | null;
    topK: { accuracy: number }[];
    classes: { label: string; precision: number; recall: number; f1: number; support: number }[];
    macro: SklearnMetrics['macro'];
    weighted: SklearnMetrics['macro'];
    confusion: { labels: string[]; matrix: number[][] };
  },
  theirs: SklearnMetrics,
): number {
  const pairs: [number, number][] = [[ours.accuracy ?? NaN, theirs.accuracy]];
  theirs.topK.forEach((t, i) => pairs.push([ours.topK[i]?.accuracy ?? NaN, t]));
  ours.classes.forEach((c, i) =>
    pairs.push([c.precision, theirs.precision[i]!], [c.recall, theirs.recall[i]!], [c.f1, theirs.f1[i]!], [c.support, theirs.support[i]!]),
  );
  for (const key of ['precision', 'recall', 'f1'] as const) pairs.push([ours.macro[key], theirs.macro[key]], [ours.weighted[key], theirs.weighted[key]]);
  ours.confusion.matrix.forEach((row, i) => row.forEach((n, j) => pairs.push([n, theirs.confusion[i]![j]!])));
  return Math.max(...pairs.map(([a, b]) => Math.abs(a - b)));
}

export const STATSMODELS_VERSION = '0.14.4';

export interface StatsmodelsMcNemar {
  exactPValue: number;
  chiSquare: number | null;
  chiSquarePValue: number | null;
}

/** statsmodels' McNemar test for each pair of discordant counts (test/support/statsmodels_mcnemar.py). */
export function statsmodelsMcNemar(pairs: [number, number][]): StatsmodelsMcNemar[] {
  const python = join(PROJECT_ROOT, '.objinfer', 'tools', 'venv', 'bin', 'python');
  const script = join(PROJECT_ROOT, 'test', 'support', 'statsmodels_mcnemar.py');
  const result = spawnSync(python, [script, STATSMODELS_VERSION], { input: JSON.stringify(pairs), encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`statsmodels failed: ${result.stderr || result.error}`);
  return JSON.parse(result.stdout) as StatsmodelsMcNemar[];
}

/** The FiftyOne release scripts/setup-test-deps.sh installs (its own venv, linked from the tools folder). */
export const FIFTYONE_VERSION = '1.22.1';

export interface FiftyOneSamples {
  predictions: Record<string, { label: string; confidence: number | null; model_version: string | null }>;
  ground_truth: Record<string, { label: string; confidence: number | null }>;
}

/** An `objinfer export --format fiftyone` folder as FiftyOne's own importer parses it, by image path. */
export function fiftyOneImport(folder: string): FiftyOneSamples {
  const python = join(PROJECT_ROOT, '.objinfer', 'tools', 'fiftyone-venv', 'bin', 'python');
  const script = join(PROJECT_ROOT, 'test', 'support', 'fiftyone_import.py');
  const result = spawnSync(python, [script, folder, FIFTYONE_VERSION], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (result.status !== 0) throw new Error(`FiftyOne failed: ${result.stderr || result.error}`);
  return JSON.parse(result.stdout) as FiftyOneSamples;
}
