/** What a backend's evaluation query returns: counts only, never a row per image. */
import type { GroundTruth } from './spec';

export interface EvaluationQuery {
  /** The prediction version to evaluate; the newest written when absent. */
  modelVersion?: string;
  groundTruth: GroundTruth;
  /** Ground-truth name to the model's label; names not in it are compared as they are. */
  labelMap: [string, string][];
}

/** The images of the object table (current generations) that share all of these. */
export interface EvaluationGroup {
  /** The ground truth as found; null: none for these images. */
  truth: string | null;
  /** The truth as a model label (after the label map). */
  expected: string | null;
  /** The top-1 label; null when there is no prediction of this version. */
  predicted: string | null;
  /** 1-based position of `expected` in the stored top-k; null when absent from it. */
  rank: number | null;
  images: number;
}

export interface EvaluationCounts {
  /** null when nothing has been predicted yet. */
  modelVersion: string | null;
  groups: EvaluationGroup[];
}

export interface ComparisonQuery {
  versions: [string, string];
  /** Without it, only what changed is counted (no accuracies, no test). */
  groundTruth?: GroundTruth;
  labelMap: [string, string][];
}

/** The current images that share the truth and both versions' top-1 labels (null: none). */
export interface ComparisonGroup {
  expected: string | null;
  a: string | null;
  b: string | null;
  images: number;
}

export interface ComparisonCounts {
  groups: ComparisonGroup[];
}

/** A row of either warehouse's evaluation query (counts come as BigInt from DuckDB, as strings or numbers from BigQuery). */
export interface EvaluationRow {
  truth: string | null;
  expected: string | null;
  predicted: string | null;
  truth_rank: number | bigint | string | null;
  images: number | bigint | string;
}

export const evaluationGroup = (r: EvaluationRow): EvaluationGroup => ({
  truth: r.truth,
  expected: r.expected,
  predicted: r.predicted,
  rank: r.truth_rank === null ? null : Number(r.truth_rank),
  images: Number(r.images),
});

/** A row of either warehouse's comparison query. */
export interface ComparisonRow {
  expected: string | null;
  label_a: string | null;
  label_b: string | null;
  images: number | bigint | string;
}

export const comparisonGroup = (r: ComparisonRow): ComparisonGroup => ({ expected: r.expected, a: r.label_a, b: r.label_b, images: Number(r.images) });

export interface GroundTruthQuery {
  groundTruth: GroundTruth;
  labelMap: [string, string][];
}

/** A current image's truth as a model label: what the report's gallery and the exports show beside the prediction. */
export interface ImageTruth {
  uri: string;
  expected: string;
}
