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
