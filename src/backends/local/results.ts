/**
 * Reading results locally: the warehouse opened read-only for the moment of the query, so
 * it works while a worker writes (waiting out a writer's brief hold on the file).
 */
import { stat } from 'node:fs/promises';
import type { DuckDBValue } from '@duckdb/node-api';
import type { RunSpec } from '../../config';
import { ErrorType, ObjinferError } from '../../errors';
import type { ComparisonCounts, ComparisonQuery, EvaluationCounts, EvaluationQuery, GroundTruthQuery, ImageTruth } from '../../evaluation/types';
import type { ErrorRow, FailureKind, LabelScore, ResultFilter, ResultRow, ResultsPort } from '../port';
import { comparisonCounts, evaluationCounts, groundTruthOf } from './evaluate';
import { quote, Warehouse, type Db } from './warehouse';

/** Filters as SQL over alias `t`, with their values bound in order. */
function where(filter: ResultFilter, timeColumn: string): { sql: string; values: DuckDBValue[] } {
  const clauses: string[] = [];
  const values: DuckDBValue[] = [];
  const bind = (clause: string, value: DuckDBValue) => {
    values.push(value);
    clauses.push(clause.replace('?', `$${values.length}`));
  };
  if (filter.label !== undefined) bind('t.label = ?', filter.label);
  if (filter.minScore !== undefined) bind('t.score >= ?', filter.minScore);
  if (filter.maxScore !== undefined) bind('t.score <= ?', filter.maxScore);
  if (filter.runId !== undefined) bind('t.run_id = ?', filter.runId);
  if (filter.since !== undefined) bind(`t.${timeColumn} >= ?::TIMESTAMPTZ`, filter.since.toISOString());
  return { sql: clauses.length ? `WHERE ${clauses.join(' AND ')}` : '', values };
}

function limitOf(filter: ResultFilter): string {
  return filter.limit === undefined ? '' : `LIMIT ${Math.max(0, Math.floor(filter.limit))}`;
}

export class LocalResults implements ResultsPort {
  constructor(private readonly spec: RunSpec) {}

  private table(name: string): string {
    return `${quote(this.spec.dataset)}.${quote(name)}`;
  }

  /** Opens the file read-only and waits out a writer's short hold on it. */
  private async read<T>(table: string, empty: T, work: (db: Db) => Promise<T>): Promise<T> {
    const path = this.spec.local.warehouse;
    if (!(await stat(path).catch(() => undefined))) {
      throw new ObjinferError(ErrorType.NotFound, `no warehouse at ${path} yet: run the pipeline first (objinfer run --config FILE)`);
    }
    return new Warehouse(path, { readOnly: true, lockTimeoutMs: 30_000 }).use(async (db) =>
      (await db.tableExists(this.spec.dataset, table)) ? work(db) : empty,
    );
  }

  /** Only rows of each object's current generation, unless history is asked for (see ResultFilter). */
  private async current(db: Db, filter: ResultFilter, sql: string): Promise<string> {
    const { dataset, objectTable } = this.spec;
    if (filter.history || !(await db.tableExists(dataset, objectTable))) return sql;
    const clause = `EXISTS (SELECT 1 FROM ${this.table(objectTable)} o WHERE o.uri = t.uri AND o.generation = t.generation)`;
    return sql ? `${sql} AND ${clause}` : `WHERE ${clause}`;
  }

  async readResults(filter: ResultFilter = {}): Promise<ResultRow[]> {
    const { results } = this.spec;
    return this.read(results.table, [], async (db) => {
      const filtered = where(filter, 'predicted_at');
      const values = filtered.values;
      const sql = await this.current(db, filter, filtered.sql);
      type Row = {
        uri: string;
        generation: bigint;
        model_version: string;
        label: string;
        score: number;
        top_k: LabelScore[];
        run_id: string;
        predicted_at: Date;
      };
      const rows = await db.all<Row>(
        `SELECT uri, generation, model_version, label, score, top_k, run_id, predicted_at FROM ${this.table(results.table)} t
         ${sql} ORDER BY predicted_at DESC, uri ${limitOf(filter)}`,
        values,
      );
      return rows.map((r) => ({
        uri: r.uri,
        generation: String(r.generation),
        modelVersion: r.model_version,
        label: r.label,
        score: r.score,
        topK: r.top_k.map((t) => ({ label: t.label, index: t.index, score: t.score })),
        runId: r.run_id,
        predictedAt: r.predicted_at.toISOString(),
      }));
    });
  }

  async readErrors(filter: ResultFilter = {}): Promise<ErrorRow[]> {
    const { results } = this.spec;
    return this.read(results.errorsTable, [], async (db) => {
      const filtered = where(filter, 'failed_at');
      const values = filtered.values;
      const sql = await this.current(db, filter, filtered.sql);
      type Row = { uri: string; generation: bigint; model_version: string; error: string; kind: string | null; run_id: string; failed_at: Date };
      const rows = await db.all<Row>(
        `SELECT uri, generation, model_version, error, kind, run_id, failed_at FROM ${this.table(results.errorsTable)} t
         ${sql} ORDER BY failed_at DESC, uri ${limitOf(filter)}`,
        values,
      );
      return rows.map((r) => ({
        uri: r.uri,
        generation: String(r.generation),
        modelVersion: r.model_version,
        error: r.error,
        kind: (r.kind ?? 'permanent') as FailureKind,
        runId: r.run_id,
        failedAt: r.failed_at.toISOString(),
      }));
    });
  }

  async evaluationCounts(query: EvaluationQuery): Promise<EvaluationCounts> {
    return this.read(this.spec.objectTable, { modelVersion: null, groups: [] }, (db) => evaluationCounts(db, this.spec, query));
  }

  async comparisonCounts(query: ComparisonQuery): Promise<ComparisonCounts> {
    return this.read(this.spec.objectTable, { groups: [] }, (db) => comparisonCounts(db, this.spec, query));
  }

  async groundTruthOf(query: GroundTruthQuery): Promise<ImageTruth[]> {
    return this.read(this.spec.objectTable, [], (db) => groundTruthOf(db, this.spec, query));
  }
}
