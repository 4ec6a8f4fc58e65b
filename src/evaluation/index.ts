/** `objinfer evaluate`: how often the model is right on the images whose class is known, computed where the predictions are. */
import type { ResultsPort } from '../backends/port';
import { openResults } from '../backends/results';
import { ConfigError, type RunSpec } from '../config';
import { readLabelMap } from './labelMap';
import { comparisonOf, type Comparison } from './compare';
import { evaluationOf, type Evaluation } from './metrics';
import { describeGroundTruth, type EvaluationSpec } from './spec';

export type { Evaluation } from './metrics';

export interface EvaluateOptions {
  /** The prediction version; the newest written when absent. */
  modelVersion?: string;
  /** Instead of the config's `evaluation` section. */
  evaluation?: EvaluationSpec;
}

/** `from`: where the counts are read (the backend's own reader unless given, e.g. the report's). */
export async function evaluate(spec: RunSpec, options: EvaluateOptions = {}, from?: ResultsPort): Promise<Evaluation & { groundTruth: string }> {
  const evaluation = options.evaluation ?? spec.evaluation;
  if (!evaluation) {
    throw new ConfigError({
      field: 'evaluation.groundTruth',
      problem:
        'says where each image\'s true class is; add e.g. `evaluation: { groundTruth: { fromPath: "flowers/{label}/*" } }` to the config, or pass --truth-from-path',
    });
  }
  const labelMap = evaluation.labelMap ? await readLabelMap(evaluation.labelMap) : [];
  const reader = from ?? (await openResults(spec));
  const counts = await reader.evaluationCounts({ modelVersion: options.modelVersion, groundTruth: evaluation.groundTruth, labelMap });
  return { ...evaluationOf(counts, spec.results.topK, labelMap), groundTruth: describeGroundTruth(evaluation.groundTruth) };
}

export type { Comparison } from './compare';

/** `objinfer compare A B`: what changed between two prediction versions, and with ground truth whether the difference in accuracy is significant. */
export async function compare(
  spec: RunSpec,
  versions: [string, string],
  options: { evaluation?: EvaluationSpec } = {},
): Promise<Comparison & { groundTruthFrom?: string }> {
  const evaluation = options.evaluation ?? spec.evaluation;
  const labelMap = evaluation?.labelMap ? await readLabelMap(evaluation.labelMap) : [];
  const counts = await (await openResults(spec)).comparisonCounts({ versions, groundTruth: evaluation?.groundTruth, labelMap });
  const comparison = comparisonOf(counts, versions, evaluation !== undefined);
  return evaluation ? { ...comparison, groundTruthFrom: describeGroundTruth(evaluation.groundTruth) } : comparison;
}

/**
 * Each current image's truth as a model label, from whichever source the config names (read in
 * the warehouse by the evaluation's own query); undefined when the config has no evaluation.
 */
export async function truthLookup(spec: RunSpec, from?: ResultsPort): Promise<((uri: string) => string | undefined) | undefined> {
  const evaluation = spec.evaluation;
  if (!evaluation) return undefined;
  const labelMap = evaluation.labelMap ? await readLabelMap(evaluation.labelMap) : [];
  const rows = await (from ?? (await openResults(spec))).groundTruthOf({ groundTruth: evaluation.groundTruth, labelMap });
  const truth = new Map(rows.map((r) => [r.uri, r.expected]));
  return (uri) => truth.get(uri);
}
