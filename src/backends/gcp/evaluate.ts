/**
 * Evaluation on BigQuery: the same counts as the local query (../local/evaluate.ts), in
 * GoogleSQL. Every value is a STRING parameter: the path regex, the prediction version and
 * the label map (as a JSON array of [truth, label] pairs, so its size does not change the
 * statement's text). It reads the object table's uri and generation and the results' key,
 * label and top_k columns of one prediction version, and returns one row per group.
 */
import type { RunSpec } from '../../config';
import type { GroundTruth } from '../../evaluation/spec';
import type { EvaluationQuery } from '../../evaluation/types';
import { tableRef } from './sql';

export function latestVersionSql(spec: RunSpec): string {
  return `SELECT r.model_version FROM ${tableRef(spec, spec.results.table)} AS r ORDER BY r.predicted_at DESC LIMIT 1`;
}

function truthSql(spec: RunSpec, truth: GroundTruth): string {
  const objects = tableRef(spec, spec.objectTable);
  if (truth.kind === 'path') return `SELECT o.uri, o.generation, NULLIF(REGEXP_EXTRACT(o.uri, @truth_pattern), '') AS truth FROM ${objects} AS o`;
  if (truth.kind === 'file') throw new Error('the gcp backend reads ground truth from a table (evaluation.groundTruth.table)');
  // One label per URI: a URI listed twice with two labels takes the first in sort order.
  const labelled = `SELECT CAST(g.uri AS STRING) AS uri, MIN(CAST(g.label AS STRING)) AS label FROM ${tableRef(spec, truth.table)} AS g GROUP BY 1`;
  return `SELECT o.uri, o.generation, NULLIF(g.label, '') AS truth FROM ${objects} AS o LEFT JOIN (${labelled}) AS g ON g.uri = o.uri`;
}

export function evaluationSql(spec: RunSpec, truth: GroundTruth): string {
  return `WITH truth AS (${truthSql(spec, truth)}),
label_map AS (
  SELECT JSON_EXTRACT_SCALAR(pair, '$[0]') AS from_label, JSON_EXTRACT_SCALAR(pair, '$[1]') AS to_label
  FROM UNNEST(JSON_EXTRACT_ARRAY(@label_map)) AS pair),
predictions AS (
  SELECT r.uri, r.generation, r.label, r.top_k FROM ${tableRef(spec, spec.results.table)} AS r WHERE r.model_version = @model_version),
joined AS (
  SELECT t.truth, COALESCE(m.to_label, t.truth) AS expected, p.label AS predicted, p.top_k
  FROM truth AS t
  LEFT JOIN predictions AS p ON p.uri = t.uri AND p.generation = t.generation
  LEFT JOIN label_map AS m ON m.from_label = t.truth),
ranked AS (
  SELECT j.truth, j.expected, j.predicted,
    (SELECT MIN(position) + 1 FROM UNNEST(j.top_k) AS k WITH OFFSET AS position WHERE k.label = j.expected) AS truth_rank
  FROM joined AS j)
SELECT truth, expected, predicted, truth_rank, COUNT(*) AS images
FROM ranked
GROUP BY truth, expected, predicted, truth_rank`;
}

export function evaluationParams(query: EvaluationQuery & { modelVersion: string }): Record<string, string> {
  return {
    ...(query.groundTruth.kind === 'path' ? { truth_pattern: query.groundTruth.regex } : {}),
    label_map: JSON.stringify(query.labelMap),
    model_version: query.modelVersion,
  };
}
