/**
 * Evaluation and comparison on BigQuery: the same counts as the local queries
 * (../local/evaluate.ts), in GoogleSQL. Every value is a STRING parameter: the path regex,
 * the prediction versions and the label map (a JSON array of [truth, label] pairs, so its
 * size does not change the statement's text). They read the object table's uri and
 * generation and the results' key, label (and for evaluation top_k) columns.
 */
import type { RunSpec } from '../../config';
import type { GroundTruth } from '../../evaluation/spec';
import { comparisonGroup, evaluationGroup } from '../../evaluation/types';
import type {
  ComparisonCounts,
  ComparisonQuery,
  ComparisonRow,
  EvaluationCounts,
  EvaluationQuery,
  EvaluationRow,
  GroundTruthQuery,
  ImageTruth,
} from '../../evaluation/types';
import { tableRef } from './sql';

function latestVersionSql(spec: RunSpec): string {
  return `SELECT r.model_version FROM ${tableRef(spec, spec.results.table)} AS r ORDER BY r.predicted_at DESC LIMIT 1`;
}

/** Each current object with its truth, and the truth as a model label (`expected`). */
function truthSql(spec: RunSpec, truth: GroundTruth | undefined): string {
  const objects = tableRef(spec, spec.objectTable);
  let found: string;
  if (!truth) found = `SELECT o.uri, o.generation, CAST(NULL AS STRING) AS truth FROM ${objects} AS o`;
  else if (truth.kind === 'path') found = `SELECT o.uri, o.generation, NULLIF(REGEXP_EXTRACT(o.uri, @truth_pattern), '') AS truth FROM ${objects} AS o`;
  else if (truth.kind === 'file') throw new Error('the gcp backend reads ground truth from a table (evaluation.groundTruth.table)');
  else {
    // One label per URI: a URI listed twice with two labels takes the first in sort order.
    const labelled = `SELECT CAST(g.uri AS STRING) AS uri, MIN(CAST(g.label AS STRING)) AS label FROM ${tableRef(spec, truth.table)} AS g GROUP BY 1`;
    found = `SELECT o.uri, o.generation, NULLIF(g.label, '') AS truth FROM ${objects} AS o LEFT JOIN (${labelled}) AS g ON g.uri = o.uri`;
  }
  return `SELECT f.uri, f.generation, f.truth, COALESCE(m.to_label, f.truth) AS expected
  FROM (${found}) AS f
  LEFT JOIN (
    SELECT JSON_EXTRACT_SCALAR(pair, '$[0]') AS from_label, JSON_EXTRACT_SCALAR(pair, '$[1]') AS to_label
    FROM UNNEST(JSON_EXTRACT_ARRAY(@label_map)) AS pair) AS m
  ON m.from_label = f.truth`;
}

function evaluationSql(spec: RunSpec, truth: GroundTruth): string {
  return `WITH truth AS (${truthSql(spec, truth)}),
predictions AS (
  SELECT r.uri, r.generation, r.label, r.top_k FROM ${tableRef(spec, spec.results.table)} AS r WHERE r.model_version = @model_version),
ranked AS (
  SELECT t.truth, t.expected, p.label AS predicted,
    (SELECT MIN(position) + 1 FROM UNNEST(p.top_k) AS k WITH OFFSET AS position WHERE k.label = t.expected) AS truth_rank
  FROM truth AS t
  LEFT JOIN predictions AS p ON p.uri = t.uri AND p.generation = t.generation)
SELECT truth, expected, predicted, truth_rank, COUNT(*) AS images
FROM ranked
GROUP BY truth, expected, predicted, truth_rank`;
}

function comparisonSql(spec: RunSpec, truth: GroundTruth | undefined): string {
  const version = (parameter: string) =>
    `SELECT r.uri, r.generation, r.label FROM ${tableRef(spec, spec.results.table)} AS r WHERE r.model_version = @${parameter}`;
  // Output names differ from the CTEs': GoogleSQL cannot group by a SELECT alias that is also a table's name.
  return `WITH truth AS (${truthSql(spec, truth)}),
first_version AS (${version('version_a')}),
second_version AS (${version('version_b')})
SELECT t.expected, f.label AS label_a, s.label AS label_b, COUNT(*) AS images
FROM truth AS t
LEFT JOIN first_version AS f ON f.uri = t.uri AND f.generation = t.generation
LEFT JOIN second_version AS s ON s.uri = t.uri AND s.generation = t.generation
GROUP BY t.expected, label_a, label_b`;
}

function truthParams(query: { groundTruth?: GroundTruth; labelMap: [string, string][] }): Record<string, string> {
  return { ...(query.groundTruth?.kind === 'path' ? { truth_pattern: query.groundTruth.regex } : {}), label_map: JSON.stringify(query.labelMap) };
}

function evaluationParams(query: EvaluationQuery & { modelVersion: string }): Record<string, string> {
  return { ...truthParams(query), model_version: query.modelVersion };
}

function comparisonParams(query: ComparisonQuery): Record<string, string> {
  return { ...truthParams(query), version_a: query.versions[0], version_b: query.versions[1] };
}

/** A query job's rows (GcpResults' reader: a missing table reads as no rows). */
export type RunQuery = <T>(sql: string, params: Record<string, string>) => Promise<T[]>;

export async function evaluationCounts(spec: RunSpec, run: RunQuery, query: EvaluationQuery): Promise<EvaluationCounts> {
  const modelVersion = query.modelVersion ?? (await run<{ model_version: string }>(latestVersionSql(spec), {}))[0]?.model_version;
  if (modelVersion === undefined) return { modelVersion: null, groups: [] };
  const rows = await run<EvaluationRow>(evaluationSql(spec, query.groundTruth), evaluationParams({ ...query, modelVersion }));
  return { modelVersion, groups: rows.map(evaluationGroup) };
}

export async function comparisonCounts(spec: RunSpec, run: RunQuery, query: ComparisonQuery): Promise<ComparisonCounts> {
  const rows = await run<ComparisonRow>(comparisonSql(spec, query.groundTruth), comparisonParams(query));
  return { groups: rows.map(comparisonGroup) };
}

export async function groundTruthOf(spec: RunSpec, run: RunQuery, query: GroundTruthQuery): Promise<ImageTruth[]> {
  const sql = `SELECT t.uri, t.expected FROM (${truthSql(spec, query.groundTruth)}) AS t WHERE t.expected IS NOT NULL ORDER BY t.uri`;
  return run<ImageTruth>(sql, truthParams(query));
}
