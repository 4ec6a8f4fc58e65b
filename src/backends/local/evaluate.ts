/**
 * Evaluation on DuckDB: one query that joins each current image to its ground truth and to
 * its prediction of the version, and returns counts per (truth, prediction, rank of the
 * truth in the top-k). Nothing per image leaves the warehouse.
 */
import type { DuckDBValue } from '@duckdb/node-api';
import type { RunSpec } from '../../config';
import { ErrorType, ObjinferError } from '../../errors';
import type { EvaluationCounts, EvaluationGroup, EvaluationQuery } from '../../evaluation/types';
import type { GroundTruth } from '../../evaluation/spec';
import { quote, type Db } from './warehouse';

/** A string literal: DuckDB's table functions take their file name as a constant. */
const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;

function readerOf(path: string): string {
  const lower = path.toLowerCase();
  if (lower.endsWith('.parquet')) return `read_parquet(${literal(path)})`;
  if (lower.endsWith('.jsonl') || lower.endsWith('.ndjson') || lower.endsWith('.json')) return `read_json(${literal(path)}, format = 'newline_delimited')`;
  return `read_csv(${literal(path)}, header = true, all_varchar = true)`;
}

/** Each object of the table with its truth (NULL where there is none); `$1` is the path regex. */
function truthSql(spec: RunSpec, truth: GroundTruth, objects: string): { sql: string; values: DuckDBValue[] } {
  if (truth.kind === 'path') {
    return { sql: `SELECT o.uri, o.generation, nullif(regexp_extract(o.uri, $1, 1), '') AS truth FROM ${objects} o`, values: [truth.regex] };
  }
  const source = truth.kind === 'file' ? readerOf(truth.path) : `${quote(spec.dataset)}.${quote(truth.table)}`;
  // One label per URI: a URI listed twice with two labels takes the first in sort order.
  const labelled = `SELECT CAST(uri AS VARCHAR) AS uri, min(CAST(label AS VARCHAR)) AS label FROM ${source} GROUP BY 1`;
  return { sql: `SELECT o.uri, o.generation, nullif(g.label, '') AS truth FROM ${objects} o LEFT JOIN (${labelled}) g ON g.uri = o.uri`, values: [] };
}

export async function evaluationCounts(db: Db, spec: RunSpec, query: EvaluationQuery): Promise<EvaluationCounts> {
  const results = `${quote(spec.dataset)}.${quote(spec.results.table)}`;
  const objects = `${quote(spec.dataset)}.${quote(spec.objectTable)}`;
  if (!(await db.tableExists(spec.dataset, spec.objectTable))) return { modelVersion: null, groups: [] };
  const hasResults = await db.tableExists(spec.dataset, spec.results.table);
  const modelVersion =
    query.modelVersion ??
    (hasResults ? (await db.one<{ v: string }>(`SELECT model_version AS v FROM ${results} ORDER BY predicted_at DESC LIMIT 1`))?.v : undefined) ??
    null;
  const truth = truthSql(spec, query.groundTruth, objects);
  const values: DuckDBValue[] = [...truth.values, modelVersion ?? ''];
  const version = `$${values.length}`;
  const pairs = query.labelMap.map(([from, to]) => {
    values.push(from, to);
    return `($${values.length - 1}, $${values.length})`;
  });
  const labelMap = pairs.length ? `VALUES ${pairs.join(', ')}` : 'SELECT NULL::VARCHAR, NULL::VARCHAR WHERE false';
  const predictions = hasResults
    ? `SELECT uri, generation, label, top_k FROM ${results} WHERE model_version = ${version}`
    : `SELECT NULL::VARCHAR AS uri, NULL::BIGINT AS generation, NULL::VARCHAR AS label, NULL::STRUCT(label VARCHAR)[] AS top_k WHERE ${version} IS NULL AND false`;
  const sql = `
    WITH truth AS (${truth.sql}),
    label_map(from_label, to_label) AS (${labelMap}),
    predictions AS (${predictions}),
    joined AS (
      SELECT t.truth, coalesce(m.to_label, t.truth) AS expected, p.label AS predicted, p.top_k
      FROM truth t
      LEFT JOIN predictions p ON p.uri = t.uri AND p.generation = t.generation
      LEFT JOIN label_map m ON m.from_label = t.truth)
    SELECT truth, expected, predicted,
      nullif(list_position([k.label FOR k IN top_k], expected), 0) AS rank, count(*) AS images
    FROM joined GROUP BY ALL`;
  type Row = { truth: string | null; expected: string | null; predicted: string | null; rank: number | null; images: bigint };
  let rows: Row[];
  try {
    rows = await db.all<Row>(sql, values);
  } catch (error) {
    throw groundTruthError(query.groundTruth, error);
  }
  const groups: EvaluationGroup[] = rows.map((r) => ({
    truth: r.truth,
    expected: r.expected,
    predicted: r.predicted,
    rank: r.rank === null ? null : Number(r.rank),
    images: Number(r.images),
  }));
  return { modelVersion, groups };
}

/** A ground-truth file or table DuckDB cannot read as `uri,label`, said as the config's problem. */
function groundTruthError(truth: GroundTruth, error: unknown): unknown {
  const message = (error as Error).message ?? String(error);
  if (truth.kind === 'path' || !/Binder Error|IO Error|Invalid Input Error|Catalog Error|Parser Error|Conversion Error/.test(message)) return error;
  const where = truth.kind === 'file' ? `evaluation.groundTruth.file ${truth.path}` : `evaluation.groundTruth.table ${truth.table}`;
  return new ObjinferError(ErrorType.InvalidConfig, `${where} could not be read as ground truth (columns uri and label): ${message.split('\n')[0]}`);
}
