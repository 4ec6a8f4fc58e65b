/**
 * Evaluation and comparison on DuckDB: each one query that joins the current images to
 * their ground truth and to their predictions, and returns counts per group (truth,
 * prediction, rank of the truth in the top-k; or the two versions' labels). Nothing per
 * image leaves the warehouse.
 */
import type { DuckDBValue } from '@duckdb/node-api';
import type { RunSpec } from '../../config';
import { ErrorType, ObjinferError } from '../../errors';
import {
  comparisonGroup,
  evaluationGroup,
  type ComparisonCounts,
  type ComparisonQuery,
  type ComparisonRow,
  type EvaluationCounts,
  type EvaluationQuery,
  type EvaluationRow,
  type GroundTruthQuery,
  type ImageTruth,
} from '../../evaluation/types';
import type { GroundTruth } from '../../evaluation/spec';
import { quote, type Db } from './warehouse';

/** Values bound in order, each named by the placeholder it returns. */
class Bound {
  readonly values: DuckDBValue[] = [];
  add(value: DuckDBValue): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

/** A string literal: DuckDB's table functions take their file name as a constant. */
const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;

function readerOf(path: string): string {
  const lower = path.toLowerCase();
  if (lower.endsWith('.parquet')) return `read_parquet(${literal(path)})`;
  if (lower.endsWith('.jsonl') || lower.endsWith('.ndjson') || lower.endsWith('.json')) return `read_json(${literal(path)}, format = 'newline_delimited')`;
  return `read_csv(${literal(path)}, header = true, all_varchar = true)`;
}

/** Each current object with its truth mapped to a model label (`expected`; NULL where there is none). */
function truthSql(spec: RunSpec, truth: GroundTruth | undefined, labelMap: [string, string][], bound: Bound): string {
  const objects = `${quote(spec.dataset)}.${quote(spec.objectTable)}`;
  let found: string;
  if (!truth) found = `SELECT o.uri, o.generation, NULL::VARCHAR AS truth FROM ${objects} o`;
  else if (truth.kind === 'path')
    found = `SELECT o.uri, o.generation, nullif(regexp_extract(o.uri, ${bound.add(truth.regex)}, 1), '') AS truth FROM ${objects} o`;
  else {
    const source = truth.kind === 'file' ? readerOf(truth.path) : `${quote(spec.dataset)}.${quote(truth.table)}`;
    // One label per URI: a URI listed twice with two labels takes the first in sort order.
    const labelled = `SELECT CAST(uri AS VARCHAR) AS uri, min(CAST(label AS VARCHAR)) AS label FROM ${source} GROUP BY 1`;
    found = `SELECT o.uri, o.generation, nullif(g.label, '') AS truth FROM ${objects} o LEFT JOIN (${labelled}) g ON g.uri = o.uri`;
  }
  const pairs = labelMap.map(([from, to]) => `(${bound.add(from)}, ${bound.add(to)})`);
  const map = pairs.length ? `VALUES ${pairs.join(', ')}` : 'SELECT NULL::VARCHAR, NULL::VARCHAR WHERE false';
  return `SELECT f.uri, f.generation, f.truth, coalesce(m.to_label, f.truth) AS expected
    FROM (${found}) f LEFT JOIN (${map}) m(from_label, to_label) ON m.from_label = f.truth`;
}

async function latestVersion(db: Db, results: string): Promise<string | undefined> {
  return (await db.one<{ v: string }>(`SELECT model_version AS v FROM ${results} ORDER BY predicted_at DESC LIMIT 1`))?.v;
}

/** Runs a query over the ground truth, saying a file or table that is not `uri,label` as the config's problem. */
async function withTruth<T extends Record<string, unknown>>(db: Db, truth: GroundTruth | undefined, sql: string, values: DuckDBValue[]): Promise<T[]> {
  try {
    return await db.all<T>(sql, values);
  } catch (error) {
    const message = (error as Error).message ?? String(error);
    if (!truth || truth.kind === 'path' || !/Binder Error|IO Error|Invalid Input Error|Catalog Error|Parser Error|Conversion Error/.test(message)) throw error;
    const where = truth.kind === 'file' ? `evaluation.groundTruth.file ${truth.path}` : `evaluation.groundTruth.table ${truth.table}`;
    throw new ObjinferError(ErrorType.InvalidConfig, `${where} could not be read as ground truth (columns uri and label): ${message.split('\n')[0]}`);
  }
}

export async function evaluationCounts(db: Db, spec: RunSpec, query: EvaluationQuery): Promise<EvaluationCounts> {
  const results = `${quote(spec.dataset)}.${quote(spec.results.table)}`;
  if (!(await db.tableExists(spec.dataset, spec.results.table))) return { modelVersion: null, groups: [] };
  const modelVersion = query.modelVersion ?? (await latestVersion(db, results));
  if (modelVersion === undefined) return { modelVersion: null, groups: [] };
  const bound = new Bound();
  const truth = truthSql(spec, query.groundTruth, query.labelMap, bound);
  const sql = `
    WITH truth AS (${truth}),
    predictions AS (SELECT uri, generation, label, top_k FROM ${results} WHERE model_version = ${bound.add(modelVersion)})
    SELECT t.truth, t.expected, p.label AS predicted,
      nullif(list_position([k.label FOR k IN p.top_k], t.expected), 0) AS truth_rank, count(*) AS images
    FROM truth t LEFT JOIN predictions p ON p.uri = t.uri AND p.generation = t.generation
    GROUP BY ALL`;
  const rows = await withTruth<EvaluationRow & Record<string, unknown>>(db, query.groundTruth, sql, bound.values);
  return { modelVersion, groups: rows.map(evaluationGroup) };
}

export async function comparisonCounts(db: Db, spec: RunSpec, query: ComparisonQuery): Promise<ComparisonCounts> {
  const results = `${quote(spec.dataset)}.${quote(spec.results.table)}`;
  if (!(await db.tableExists(spec.dataset, spec.results.table))) return { groups: [] };
  const bound = new Bound();
  const truth = truthSql(spec, query.groundTruth, query.labelMap, bound);
  const version = (v: string) => `SELECT uri, generation, label FROM ${results} WHERE model_version = ${bound.add(v)}`;
  const sql = `
    WITH truth AS (${truth}), first_version AS (${version(query.versions[0])}), second_version AS (${version(query.versions[1])})
    SELECT t.expected, f.label AS label_a, s.label AS label_b, count(*) AS images
    FROM truth t
    LEFT JOIN first_version f ON f.uri = t.uri AND f.generation = t.generation
    LEFT JOIN second_version s ON s.uri = t.uri AND s.generation = t.generation
    GROUP BY ALL`;
  const rows = await withTruth<ComparisonRow & Record<string, unknown>>(db, query.groundTruth, sql, bound.values);
  return { groups: rows.map(comparisonGroup) };
}

export async function groundTruthOf(db: Db, spec: RunSpec, query: GroundTruthQuery): Promise<ImageTruth[]> {
  const bound = new Bound();
  const sql = `SELECT t.uri, t.expected FROM (${truthSql(spec, query.groundTruth, query.labelMap, bound)}) t WHERE t.expected IS NOT NULL ORDER BY t.uri`;
  return withTruth<ImageTruth & Record<string, unknown>>(db, query.groundTruth, sql, bound.values);
}
