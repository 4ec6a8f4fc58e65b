/** Reading results on BigQuery: newest first, with the filters of `objinfer results`. */
import type { RunSpec } from '../../config';
import type { ComparisonCounts, ComparisonQuery, EvaluationCounts, EvaluationQuery, GroundTruthQuery, ImageTruth } from '../../evaluation/types';
import type { ErrorRow, FailureKind, LabelScore, ResultFilter, ResultRow, ResultsPort } from '../port';
import type { GcpClients } from './clients';
import { classifyGoogleError, isNotFound } from './errors';
import { namedParameters } from './jobs';
import { comparisonCounts, evaluationCounts, groundTruthOf } from './evaluate';
import { readErrorsSql, readResultsSql, tableRef } from './sql';

/** Filters as SQL over alias `t`; every value a STRING parameter, cast where it is not text. */
function where(filter: ResultFilter, timeColumn: string, objectTable: string): { clauses: string[]; params: Record<string, string> } {
  const clauses: string[] = [];
  const params: Record<string, string> = {};
  const bind = (clause: string, name: string, value: string) => {
    clauses.push(clause);
    params[name] = value;
  };
  if (filter.label !== undefined) bind('t.label = @label', 'label', filter.label);
  if (filter.minScore !== undefined) bind('t.score >= CAST(@min_score AS FLOAT64)', 'min_score', String(filter.minScore));
  if (filter.maxScore !== undefined) bind('t.score <= CAST(@max_score AS FLOAT64)', 'max_score', String(filter.maxScore));
  if (filter.runId !== undefined) bind('t.run_id = @run_id', 'run_id', filter.runId);
  if (filter.since !== undefined) bind(`t.${timeColumn} >= TIMESTAMP(@since)`, 'since', filter.since.toISOString());
  // Only each object's current generation, as the object table's cache lists it (see ResultFilter).
  if (!filter.history) clauses.push(`EXISTS (SELECT 1 FROM ${objectTable} AS o WHERE o.uri = t.uri AND o.generation = t.generation)`);
  return { clauses, params };
}

const timestamp = (value: unknown): string => String((value as { value?: string })?.value ?? value);

export class GcpResults implements ResultsPort {
  constructor(
    private readonly spec: RunSpec,
    private readonly clients: Pick<GcpClients, 'bigquery' | 'storage'>,
  ) {}

  /** An object's bytes from Cloud Storage, its size checked first (no download of a huge object). */
  async readObject(uri: string, maxBytes: number): Promise<Buffer> {
    const match = /^gs:\/\/([^/]+)\/(.+)$/.exec(uri);
    if (!match) throw new Error(`${uri} is not a gs:// object URI`);
    const file = this.clients.storage.bucket(match[1]!).file(match[2]!);
    const [metadata] = await file.getMetadata().catch((error: unknown) => Promise.reject(classifyGoogleError(error, `read ${uri}`)));
    if (Number(metadata.size) > maxBytes) throw new Error(`${uri} is ${metadata.size} bytes; at most ${maxBytes} are read for a thumbnail`);
    const [bytes] = await file.download().catch((error: unknown) => Promise.reject(classifyGoogleError(error, `read ${uri}`)));
    return bytes;
  }

  private async query<T>(sql: string, params: Record<string, string>): Promise<T[]> {
    try {
      // A job, not the client's query(): its fast path drops parameters not given as `params`.
      const [job] = await this.clients.bigquery.createQueryJob({ query: sql, location: this.spec.location, useLegacySql: false, ...namedParameters(params) });
      const [rows] = await job.getQueryResults();
      return rows as T[];
    } catch (error) {
      if (isNotFound(error)) return []; // no run has made the table yet
      throw classifyGoogleError(error, 'read results');
    }
  }

  async readResults(filter: ResultFilter = {}): Promise<ResultRow[]> {
    const { clauses, params } = where(filter, 'predicted_at', tableRef(this.spec, this.spec.objectTable));
    type Row = {
      uri: string;
      generation: number | string;
      model_version: string;
      label: string;
      score: number;
      top_k: LabelScore[];
      run_id: string;
      predicted_at: unknown;
    };
    const rows = await this.query<Row>(readResultsSql(this.spec, clauses, filter.limit), params);
    return rows.map((r) => ({
      uri: r.uri,
      generation: String(r.generation),
      modelVersion: r.model_version,
      label: r.label,
      score: Number(r.score),
      topK: (r.top_k ?? []).map((t) => ({ label: t.label, index: Number(t.index), score: Number(t.score) })),
      runId: r.run_id,
      predictedAt: new Date(timestamp(r.predicted_at)).toISOString(),
    }));
  }

  async readErrors(filter: ResultFilter = {}): Promise<ErrorRow[]> {
    const { clauses, params } = where(filter, 'failed_at', tableRef(this.spec, this.spec.objectTable));
    type Row = { uri: string; generation: number | string; model_version: string; error: string; kind: string | null; run_id: string; failed_at: unknown };
    const rows = await this.query<Row>(readErrorsSql(this.spec, clauses, filter.limit), params);
    return rows.map((r) => ({
      uri: r.uri,
      generation: String(r.generation),
      modelVersion: r.model_version,
      error: r.error,
      kind: (r.kind ?? 'permanent') as FailureKind,
      runId: r.run_id,
      failedAt: new Date(timestamp(r.failed_at)).toISOString(),
    }));
  }

  evaluationCounts(query: EvaluationQuery): Promise<EvaluationCounts> {
    return evaluationCounts(this.spec, (sql, params) => this.query(sql, params), query);
  }

  comparisonCounts(query: ComparisonQuery): Promise<ComparisonCounts> {
    return comparisonCounts(this.spec, (sql, params) => this.query(sql, params), query);
  }

  groundTruthOf(query: GroundTruthQuery): Promise<ImageTruth[]> {
    return groundTruthOf(this.spec, (sql, params) => this.query(sql, params), query);
  }
}
