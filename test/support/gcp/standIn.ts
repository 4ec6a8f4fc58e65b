/**
 * A local stand-in for the Google APIs the gcp backend calls that cannot run here:
 * BigQuery (datasets, tables, models, jobs), the BigQuery Connection API, the Reservation
 * API, Resource Manager's testIamPermissions and Cloud Storage bucket IAM. Cloud Storage
 * itself is the real emulator (fake-gcs-server): every other /storage request is passed
 * through to it. It speaks the REST shapes the real client libraries send and expect,
 * checks required fields, and answers any request it does not know with 501 and a record
 * in `unknown`, so that a new call cannot pass silently.
 *
 * BigQuery statements are the ones src/backends/gcp/sql.ts builds, recognised by shape;
 * ML.PREDICT "classifies" an image by the colour its file name starts with.
 */
import { bigqueryFingerprint } from 'farmhash-modern';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export interface StandInOptions {
  project: string;
  fakeGcsUrl: string;
  missingPermissions?: string[];
  /** Buckets the caller has no rights on (readable by all, like the tutorial's sample data). */
  foreignBuckets?: string[];
  /** After a grant, reads through the connection fail with Google's propagation 403 this long. */
  propagationMs?: number;
  /** Objects whose name contains this fail ML.DECODE_IMAGE. */
  undecodable?: string;
  /** The first PUT of a bucket policy meets a concurrent change (412) by "someone else". */
  concurrentPolicyChange?: boolean;
  /** The response to the first insert of each batch job is lost (the job is created). */
  loseFirstBatchInsertResponse?: boolean;
  hasReservationAssignment?: boolean;
  modelColumns?: { feature: string; label: string };
}

interface Row extends Record<string, unknown> {}
interface Table {
  external?: { sourceUris: string[]; connectionId: string };
  schema?: { fields: unknown[] };
  rows: Row[];
  insertIds: Set<string>;
}
interface Job {
  id: string;
  query: string;
  state: 'PENDING' | 'RUNNING' | 'DONE';
  gets: number;
  error?: { reason: string; message: string };
  rows: Row[];
  fields: string[];
  dryRun: boolean;
}
interface GcsObject {
  uri: string;
  name: string;
  generation: string;
}

type Params = Record<string, unknown>;
type Handler = (match: RegExpMatchArray, body: Record<string, unknown>, url: URL) => Promise<[number, unknown]> | [number, unknown];

const json = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

const googleError = (code: number, status: string, message: string) => [code, { error: { code, status, message, errors: [{ reason: status.toLowerCase(), message }] } }] as [number, unknown];

export class GoogleStandIn {
  url = '';
  readonly requests: string[] = [];
  readonly unknown: string[] = [];
  /** Every job inserted, in order (a re-attach does not add one). */
  readonly jobs: Job[] = [];
  readonly datasets = new Map<string, { location: string; tables: Map<string, Table>; models: Map<string, Row> }>();
  readonly connections = new Map<string, { serviceAccountId: string }>();
  readonly policies = new Map<string, { bindings: { role: string; members: string[] }[]; version: number }>();
  readonly reservations = new Map<string, { assignments: Row[] }>();
  private readonly grantedAt = new Map<string, number>();
  private readonly lostResponses = new Set<string>();
  private concurrentChangeDone = false;
  private server?: Server;
  private readonly routes: [string, RegExp, Handler][];

  constructor(private readonly options: StandInOptions) {
    const bq = '/bigquery/v2/projects/([^/]+)';
    this.routes = [
      ['GET', new RegExp(`^${bq}/datasets/([^/]+)$`), (m) => this.getDataset(m[2]!)],
      ['POST', new RegExp(`^${bq}/datasets$`), (_m, b) => this.insertDataset(b)],
      ['DELETE', new RegExp(`^${bq}/datasets/([^/]+)$`), (m) => this.deleteDataset(m[2]!)],
      ['GET', new RegExp(`^${bq}/datasets/([^/]+)/tables/([^/]+)$`), (m) => this.getTable(m[2]!, m[3]!)],
      ['POST', new RegExp(`^${bq}/datasets/([^/]+)/tables$`), (m, b) => this.insertTable(m[2]!, b)],
      ['DELETE', new RegExp(`^${bq}/datasets/([^/]+)/tables/([^/]+)$`), (m) => this.deleteTable(m[2]!, m[3]!)],
      ['POST', new RegExp(`^${bq}/datasets/([^/]+)/tables/([^/]+)/insertAll$`), (m, b) => this.insertAll(m[2]!, m[3]!, b)],
      ['GET', new RegExp(`^${bq}/datasets/([^/]+)/tables/([^/]+)/data$`), (m) => this.listRows(m[2]!, m[3]!)],
      ['GET', new RegExp(`^${bq}/datasets/([^/]+)/models/([^/]+)$`), (m) => this.getModel(m[2]!, m[3]!)],
      ['DELETE', new RegExp(`^${bq}/datasets/([^/]+)/models/([^/]+)$`), (m) => this.deleteModel(m[2]!, m[3]!)],
      ['POST', new RegExp(`^${bq}/jobs$`), (_m, b) => this.insertJob(b)],
      ['GET', new RegExp(`^${bq}/jobs/([^/]+)$`), (m) => this.getJob(m[2]!)],
      ['POST', new RegExp(`^${bq}/jobs/([^/]+)/cancel$`), (m) => this.cancelJob(m[2]!)],
      ['GET', new RegExp(`^${bq}/queries/([^/]+)$`), (m) => this.queryResults(m[2]!)],
      ['GET', /^\/v1\/(projects\/[^/]+\/locations\/[^/]+\/connections\/[^/]+)$/, (m) => this.getConnection(m[1]!)],
      ['POST', /^\/v1\/(projects\/[^/]+\/locations\/[^/]+)\/connections$/, (m, b, u) => this.createConnection(m[1]!, b, u)],
      ['DELETE', /^\/v1\/(projects\/[^/]+\/locations\/[^/]+\/connections\/[^/]+)$/, (m) => this.deleteConnection(m[1]!)],
      ['POST', /^\/v3\/projects\/([^/:]+):testIamPermissions$/, (_m, b) => this.testProjectPermissions(b)],
      ['GET', /^\/v1\/projects\/([^/]+)\/locations\/([^/:]+):searchAllAssignments$/, () => this.searchAssignments()],
      ['GET', /^\/v1\/(projects\/[^/]+\/locations\/[^/]+\/reservations\/[^/]+)$/, (m) => this.getReservation(m[1]!)],
      ['POST', /^\/v1\/(projects\/[^/]+\/locations\/[^/]+)\/reservations$/, (m, b, u) => this.createReservation(m[1]!, b, u)],
      ['DELETE', /^\/v1\/(projects\/[^/]+\/locations\/[^/]+\/reservations\/[^/]+)$/, (m) => this.deleteReservation(m[1]!)],
      ['GET', /^\/v1\/(projects\/[^/]+\/locations\/[^/]+\/reservations\/[^/]+)\/assignments$/, (m) => this.listAssignments(m[1]!)],
      ['POST', /^\/v1\/(projects\/[^/]+\/locations\/[^/]+\/reservations\/[^/]+)\/assignments$/, (m, b) => this.createAssignment(m[1]!, b)],
      ['GET', /^\/storage\/v1\/b\/([^/]+)\/iam$/, (m) => this.getPolicy(m[1]!)],
      ['PUT', /^\/storage\/v1\/b\/([^/]+)\/iam$/, (m, b) => this.setPolicy(m[1]!, b)],
      ['GET', /^\/storage\/v1\/b\/([^/]+)\/iam\/testPermissions$/, (m, _b, u) => this.testBucketPermissions(m[1]!, u)],
    ];
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((done) => this.server!.listen(0, '127.0.0.1', () => done()));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections(); // the clients keep connections alive
    await new Promise<void>((done) => this.server?.close(() => done()));
  }

  /** The SQL of every job, in order. */
  get statements(): string[] {
    return this.jobs.filter((j) => !j.dryRun).map((j) => j.query);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://stand-in');
    const line = `${req.method} ${url.pathname}`;
    this.requests.push(line);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    for (const [method, pattern, handler] of this.routes) {
      const match = url.pathname.match(pattern);
      if (method !== req.method || !match) continue;
      try {
        const body = raw.length && /json/.test(req.headers['content-type'] ?? 'json') ? (JSON.parse(raw.toString()) as Record<string, unknown>) : {};
        const [status, payload] = await handler(match, body, url);
        if (status === -1) {
          req.socket.destroy(); // the lost response
          return;
        }
        json(res, status, payload);
      } catch (error) {
        const notFound = (error as { notFound?: boolean }).notFound;
        const [code, status] = notFound ? [404, 'NOT_FOUND'] : [400, 'INVALID_ARGUMENT'];
        json(res, code, { error: { code, status, message: `stand-in: ${(error as Error).message}` } });
      }
      return;
    }
    if (/^\/(upload\/|download\/)?storage\/v1\//.test(url.pathname)) {
      this.proxyToGcs(req, res, raw);
      return;
    }
    this.unknown.push(line);
    json(res, 501, { error: { code: 501, status: 'UNIMPLEMENTED', message: `stand-in does not know ${line}` } });
  }

  private proxyToGcs(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
    const target = new URL(req.url ?? '/', this.options.fakeGcsUrl);
    const headers = { ...req.headers, host: target.host };
    const forward = httpRequest(target, { method: req.method, headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    forward.on('error', (error) => json(res, 502, { error: { code: 502, message: String(error) } }));
    forward.end(body);
  }

  // ---- BigQuery resources ----

  private dataset(id: string) {
    const dataset = this.datasets.get(id);
    if (!dataset) throw Object.assign(new Error(`Not found: Dataset ${this.options.project}:${id}`), { notFound: true });
    return dataset;
  }

  private getDataset(id: string): [number, unknown] {
    const dataset = this.datasets.get(id);
    if (!dataset) return googleError(404, 'NOT_FOUND', `Not found: Dataset ${this.options.project}:${id}`);
    return [200, { kind: 'bigquery#dataset', id: `${this.options.project}:${id}`, datasetReference: { projectId: this.options.project, datasetId: id }, location: dataset.location }];
  }

  private insertDataset(body: Record<string, unknown>): [number, unknown] {
    const reference = body.datasetReference as { datasetId?: string } | undefined;
    if (!reference?.datasetId) throw new Error('datasetReference.datasetId is required');
    if (!body.location) throw new Error('location is required');
    if (this.datasets.has(reference.datasetId)) return googleError(409, 'ALREADY_EXISTS', `Already Exists: Dataset ${this.options.project}:${reference.datasetId}`);
    this.datasets.set(reference.datasetId, { location: String(body.location), tables: new Map(), models: new Map() });
    return this.getDataset(reference.datasetId);
  }

  private deleteDataset(id: string): [number, unknown] {
    if (!this.datasets.delete(id)) return googleError(404, 'NOT_FOUND', `Not found: Dataset ${id}`);
    return [204, {}];
  }

  private tableResource(datasetId: string, tableId: string, table: Table) {
    return {
      kind: 'bigquery#table',
      tableReference: { projectId: this.options.project, datasetId, tableId },
      type: table.external ? 'EXTERNAL' : 'TABLE',
      ...(table.external ? { externalDataConfiguration: { ...table.external, objectMetadata: 'SIMPLE' } } : { schema: table.schema }),
      numRows: String(table.rows.length),
    };
  }

  private getTable(datasetId: string, tableId: string): [number, unknown] {
    const table = this.datasets.get(datasetId)?.tables.get(tableId);
    if (!table) return googleError(404, 'NOT_FOUND', `Not found: Table ${this.options.project}:${datasetId}.${tableId}`);
    return [200, this.tableResource(datasetId, tableId, table)];
  }

  private insertTable(datasetId: string, body: Record<string, unknown>): [number, unknown] {
    const reference = body.tableReference as { tableId?: string } | undefined;
    if (!reference?.tableId) throw new Error('tableReference.tableId is required');
    if (!(body.schema as { fields?: unknown[] })?.fields?.length) throw new Error('schema.fields is required');
    const dataset = this.dataset(datasetId);
    if (dataset.tables.has(reference.tableId)) return googleError(409, 'ALREADY_EXISTS', `Already Exists: Table ${datasetId}.${reference.tableId}`);
    const table: Table = { schema: body.schema as { fields: unknown[] }, rows: [], insertIds: new Set() };
    dataset.tables.set(reference.tableId, table);
    return [200, this.tableResource(datasetId, reference.tableId, table)];
  }

  private deleteTable(datasetId: string, tableId: string): [number, unknown] {
    if (!this.datasets.get(datasetId)?.tables.delete(tableId)) return googleError(404, 'NOT_FOUND', `Not found: Table ${datasetId}.${tableId}`);
    return [204, {}];
  }

  private insertAll(datasetId: string, tableId: string, body: Record<string, unknown>): [number, unknown] {
    const table = this.dataset(datasetId).tables.get(tableId);
    if (!table || table.external) return googleError(404, 'NOT_FOUND', `Not found: Table ${datasetId}.${tableId}`);
    for (const row of (body.rows as { insertId?: string; json: Row }[]) ?? []) {
      if (!row.insertId) throw new Error('rows[].insertId is required (objinfer deduplicates by it)');
      if (table.insertIds.has(row.insertId)) continue;
      table.insertIds.add(row.insertId);
      table.rows.push(row.json);
    }
    return [200, { kind: 'bigquery#tableDataInsertAllResponse' }];
  }

  private listRows(datasetId: string, tableId: string): [number, unknown] {
    const table = this.dataset(datasetId).tables.get(tableId);
    if (!table?.schema) return googleError(404, 'NOT_FOUND', `Not found: Table ${datasetId}.${tableId}`);
    // TIMESTAMPs travel as microseconds since the epoch (the clients ask for int64 timestamps).
    const scalar = (type: string | undefined, v: unknown) =>
      v === null || v === undefined ? null : type === 'TIMESTAMP' ? String(Date.parse(String(v)) * 1000) : String(v);
    const encode = (fields: { name: string; type?: string; fields?: unknown[]; mode?: string }[], row: Row): unknown => ({
      f: fields.map((field) => {
        const value = row[field.name];
        const one = (v: unknown) => (field.fields ? { v: encode(field.fields as { name: string }[], v as Row) } : { v: scalar(field.type, v) });
        return field.mode === 'REPEATED' ? { v: ((value as unknown[]) ?? []).map(one) } : one(value);
      }),
    });
    return [200, { kind: 'bigquery#tableDataList', totalRows: String(table.rows.length), rows: table.rows.map((r) => encode(table.schema!.fields as { name: string }[], r)) }];
  }

  private getModel(datasetId: string, modelId: string): [number, unknown] {
    const model = this.datasets.get(datasetId)?.models.get(modelId);
    if (!model) return googleError(404, 'NOT_FOUND', `Not found: Model ${this.options.project}:${datasetId}.${modelId}`);
    return [200, { kind: 'bigquery#model', modelReference: { projectId: this.options.project, datasetId, modelId }, ...model }];
  }

  private deleteModel(datasetId: string, modelId: string): [number, unknown] {
    if (!this.datasets.get(datasetId)?.models.delete(modelId)) return googleError(404, 'NOT_FOUND', `Not found: Model ${datasetId}.${modelId}`);
    return [204, {}];
  }

  // ---- jobs ----

  private jobResource(job: Job) {
    return {
      kind: 'bigquery#job',
      id: `${this.options.project}:US.${job.id}`,
      jobReference: { projectId: this.options.project, jobId: job.id, location: 'US' },
      configuration: { query: { query: job.query } },
      status: { state: job.state, ...(job.state === 'DONE' && job.error ? { errorResult: job.error, errors: [job.error] } : {}) },
      statistics: { query: { totalBytesProcessed: String(1000 * (job.rows.length + 1)) }, totalBytesProcessed: String(1000 * (job.rows.length + 1)) },
    };
  }

  private async insertJob(body: Record<string, unknown>): Promise<[number, unknown]> {
    const reference = body.jobReference as { jobId?: string } | undefined;
    const query = (body.configuration as { query?: { query?: string; queryParameters?: unknown[]; useLegacySql?: boolean } })?.query;
    const dryRun = Boolean((body.configuration as { dryRun?: boolean })?.dryRun);
    if (!query?.query) throw new Error('configuration.query.query is required');
    if (query.useLegacySql !== false) throw new Error('objinfer must send useLegacySql: false');
    const id = reference?.jobId ?? `dry_${this.jobs.length}`;
    if (!dryRun && this.jobs.some((j) => j.id === id)) return googleError(409, 'ALREADY_EXISTS', `Already Exists: Job ${this.options.project}:US.${id}`);
    const job: Job = { id, query: query.query, state: dryRun ? 'DONE' : 'PENDING', gets: 0, rows: [], fields: [], dryRun };
    this.jobs.push(job);
    if (!dryRun) await this.execute(job, decodeParams(query.queryParameters ?? []));
    if (!dryRun && this.options.loseFirstBatchInsertResponse && job.query.includes('ML.PREDICT') && !this.lostResponses.has(id)) {
      this.lostResponses.add(id);
      return [-1, null];
    }
    return [200, this.jobResource(job)];
  }

  private getJob(id: string): [number, unknown] {
    const job = this.jobs.find((j) => j.id === id && !j.dryRun);
    if (!job) return googleError(404, 'NOT_FOUND', `Not found: Job ${this.options.project}:US.${id}`);
    job.gets++;
    if (job.state !== 'DONE') job.state = job.gets >= 2 ? 'DONE' : 'RUNNING'; // PENDING -> RUNNING -> DONE
    return [200, this.jobResource(job)];
  }

  private cancelJob(id: string): [number, unknown] {
    const job = this.jobs.find((j) => j.id === id);
    if (!job) return googleError(404, 'NOT_FOUND', `Not found: Job ${id}`);
    if (job.state !== 'DONE') {
      job.state = 'DONE';
      job.error = { reason: 'stopped', message: 'Job execution was cancelled: User requested cancellation' };
    }
    return [200, { kind: 'bigquery#jobCancelResponse', job: this.jobResource(job) }];
  }

  private queryResults(id: string): [number, unknown] {
    const job = this.jobs.find((j) => j.id === id);
    if (!job) return googleError(404, 'NOT_FOUND', `Not found: Job ${id}`);
    if (job.state !== 'DONE') return [200, { kind: 'bigquery#getQueryResultsResponse', jobComplete: false, jobReference: { jobId: id } }];
    return [200, {
      kind: 'bigquery#getQueryResultsResponse',
      jobComplete: true,
      jobReference: { projectId: this.options.project, jobId: id, location: 'US' },
      schema: { fields: job.fields.map((name) => ({ name, type: name === 'kind' || name === 'label' ? 'STRING' : 'INTEGER' })) },
      totalRows: String(job.rows.length),
      rows: job.rows.map((r) => ({ f: job.fields.map((f) => ({ v: r[f] === undefined ? null : String(r[f]) })) })),
    }];
  }

  /** Runs one of the statements objinfer sends; anything else fails the job loudly. */
  private async execute(job: Job, params: Params): Promise<void> {
    const sql = job.query;
    const fail = (reason: string, message: string) => (job.error = { reason, message });
    const p = this.options.project;
    try {
      let m: RegExpMatchArray | null;
      if ((m = sql.match(/^CREATE OR REPLACE EXTERNAL TABLE `([^`]+)`\nWITH CONNECTION `([^`]+)`\nOPTIONS \(object_metadata = 'SIMPLE', uris = \[(.+)\]\)$/))) {
        const [ds, table] = splitRef(m[1]!, p);
        const connection = m[2]!;
        const name = `projects/${connection.split('.')[0]}/locations/${connection.split('.')[1]}/connections/${connection.split('.')[2]}`;
        if (!this.connections.has(name)) return void fail('notFound', `Not found: Connection ${connection}`);
        const uris = [...m[3]!.matchAll(/'([^']+)'/g)].map((u) => u[1]!);
        this.dataset(ds).tables.set(table, { external: { sourceUris: uris, connectionId: connection }, rows: [], insertIds: new Set() });
        return;
      }
      if ((m = sql.match(/^CREATE OR REPLACE MODEL `([^`]+)`\nOPTIONS \(model_type = '(TENSORFLOW|ONNX)', model_path = '([^']+)',\n  labels = \[\('objinfer_version', '([^']+)'\)\]\)$/))) {
        const [ds, model] = splitRef(m[1]!, p);
        const files = await this.listGcs(m[3]!.replace(/\*$/, ''));
        if (files.length === 0) return void fail('invalid', `model_path ${m[3]} has no files`);
        const columns = this.options.modelColumns ?? { feature: 'input_1', label: 'activation_49' };
        this.dataset(ds).models.set(model, {
          modelType: m[2], labels: { objinfer_version: m[4] },
          featureColumns: [{ name: columns.feature, type: { typeKind: 'ARRAY' } }],
          labelColumns: [{ name: columns.label, type: { typeKind: 'ARRAY' } }],
        });
        return;
      }
      if ((m = sql.match(/^SELECT COUNT\(\*\) AS objects FROM `([^`]+)`$/))) {
        const objects = await this.readObjectTable(m[1]!, fail);
        if (objects) this.answer(job, ['objects'], [{ objects: objects.length }]);
        return;
      }
      if ((m = sql.match(/^SELECT COUNT\(\*\) AS objects_seen, COUNTIF\(NOT \((.+)\)\) AS already_done\nFROM `([^`]+)` AS o$/s))) {
        const objects = await this.readObjectTable(m[2]!, fail);
        if (!objects) return;
        const done = objects.filter((o) => !this.pending(sql, o, params)).length;
        this.answer(job, ['objects_seen', 'already_done'], [{ objects_seen: objects.length, already_done: done }]);
        return;
      }
      if (sql.startsWith('INSERT INTO `') && sql.includes('FROM ML.PREDICT(MODEL `')) return await this.predict(job, params, fail);
      if ((m = sql.match(/^SELECT COUNT\(\*\) AS pending\nFROM `([^`]+)` AS o\nWHERE /))) {
        const objects = await this.readObjectTable(m[1]!, fail);
        if (objects) this.answer(job, ['pending'], [{ pending: objects.filter((o) => inSlice(sql, 'o', o.uri) && this.pending(sql, o, params)).length }]);
        return;
      }
      if ((m = sql.match(/^INSERT INTO `([^`]+)` \(uri, generation, model_version, error, run_id, failed_at\)\nSELECT o\.uri, o\.generation, @model_version, @error, @run_id, CURRENT_TIMESTAMP\(\)\nFROM `([^`]+)` AS o\nWHERE /))) {
        const objects = await this.readObjectTable(m[2]!, fail);
        if (!objects) return;
        const errors = this.tableRows(m[1]!);
        for (const o of objects.filter((x) => inSlice(sql, 'o', x.uri) && this.pending(sql, x, params))) {
          errors.push({ uri: o.uri, generation: o.generation, model_version: params.model_version, error: params.error, run_id: params.run_id, failed_at: new Date().toISOString() });
        }
        return;
      }
      if (sql.startsWith("SELECT 'label' AS kind, label, COUNT(*) AS n FROM `")) {
        const refs = [...sql.matchAll(/FROM `([^`]+)` AS r/g)].map((x) => x[1]!);
        const mine = (r: Row) => r.model_version === params.model_version && r.run_id === params.run_id && inSlice(sql, 'r', String(r.uri));
        const counts = new Map<string, number>();
        for (const r of this.tableRows(refs[0]!).filter(mine)) counts.set(String(r.label), (counts.get(String(r.label)) ?? 0) + 1);
        const rows: Row[] = [...counts].map(([label, n]) => ({ kind: 'label', label, n }));
        rows.push({ kind: 'failed', label: '', n: this.tableRows(refs[1]!).filter(mine).length });
        this.answer(job, ['kind', 'label', 'n'], rows);
        return;
      }
      this.unknown.push(`SQL ${sql.split('\n')[0]}`);
      fail('invalidQuery', `stand-in does not know this statement: ${sql.split('\n')[0]}`);
    } catch (error) {
      fail('invalid', (error as Error).message);
    }
  }

  private answer(job: Job, fields: string[], rows: Row[]): void {
    job.fields = fields;
    job.rows = rows;
  }

  private tableRows(ref: string): Row[] {
    const [ds, table] = splitRef(ref, this.options.project);
    const found = this.dataset(ds).tables.get(table);
    if (!found) throw new Error(`Not found: Table ${ref}`);
    return found.rows;
  }

  /** The pending predicate: no row in either table for (uri, generation, @model_version). */
  private pending(sql: string, object: GcsObject, params: Params): boolean {
    const tables = [...sql.matchAll(/NOT EXISTS \(SELECT 1 FROM `([^`]+)` AS x WHERE x\.uri = (\w)\.uri/g)].map((x) => x[1]!);
    if (tables.length !== 2) throw new Error('expected the two NOT EXISTS of the pending predicate');
    return tables.every((ref) => !this.tableRows(ref).some((r) => r.uri === object.uri && String(r.generation) === object.generation && r.model_version === params.model_version));
  }

  private async predict(job: Job, params: Params, fail: (reason: string, message: string) => void): Promise<void> {
    const sql = job.query;
    const results = sql.match(/^INSERT INTO `([^`]+)`/)![1]!;
    const model = sql.match(/FROM ML\.PREDICT\(MODEL `([^`]+)`/)![1]!;
    const feature = sql.match(/ML\.RESIZE_IMAGE\(ML\.DECODE_IMAGE\(o\.data\), (\d+), (\d+), (TRUE|FALSE)\) AS (\w+)/);
    const output = sql.match(/FROM UNNEST\(p\.(\w+)\) AS s WITH OFFSET AS i ORDER BY s DESC, i LIMIT (\d+)\) AS top_k/);
    const objectTable = sql.match(/\n    FROM `([^`]+)` AS o\n/)![1]!;
    const [ds, modelId] = splitRef(model, this.options.project);
    const described = this.dataset(ds).models.get(modelId) as { featureColumns: { name: string }[]; labelColumns: { name: string }[] } | undefined;
    if (!described) return fail('notFound', `Not found: Model ${model}`);
    if (feature?.[4] !== described.featureColumns[0]!.name || output?.[1] !== described.labelColumns[0]!.name) {
      return fail('invalidQuery', `ML.PREDICT: the model's columns are ${described.featureColumns[0]!.name} -> ${described.labelColumns[0]!.name}`);
    }
    const objects = await this.readObjectTable(objectTable, fail);
    if (!objects) return;
    const batch = objects.filter((o) => inSlice(sql, 'o', o.uri) && this.pending(sql, o, params));
    const bad = this.options.undecodable && batch.find((o) => o.name.includes(this.options.undecodable!));
    if (bad) return fail('invalidQuery', `Error while executing ML.DECODE_IMAGE: failed to decode image ${bad.uri}`);
    const labels = (params.labels as string[]) ?? [];
    const topK = Number(output![2]);
    const rows = this.tableRows(results);
    for (const object of batch) {
      const colour = object.name.split('/').pop()!.split('-')[0]!;
      const scores = labels.map((label) => (label === colour ? 0.9 : 0.1 / Math.max(1, labels.length - 1)));
      const order = scores.map((s, i) => ({ label: labels[i]!, index: i, score: s })).sort((a, b) => b.score - a.score || a.index - b.index).slice(0, topK);
      rows.push({
        uri: object.uri, generation: object.generation, model_version: params.model_version, label: order[0]?.label ?? null, score: order[0]?.score ?? null,
        top_k: order, probabilities: null, run_id: params.run_id, predicted_at: new Date().toISOString(),
      });
    }
    job.rows = batch.map((o) => ({ uri: o.uri }));
  }

  /** Lists an object table's objects through its connection, as BigQuery would. */
  private async readObjectTable(ref: string, fail: (reason: string, message: string) => void): Promise<GcsObject[] | undefined> {
    const [ds, tableId] = splitRef(ref, this.options.project);
    const table = this.dataset(ds).tables.get(tableId);
    if (!table?.external) {
      fail('notFound', `Not found: Table ${ref}`);
      return undefined;
    }
    const [project, location, connectionId] = table.external.connectionId.split('.');
    const connection = this.connections.get(`projects/${project}/locations/${location}/connections/${connectionId}`);
    const member = `serviceAccount:${connection?.serviceAccountId}`;
    const objects: GcsObject[] = [];
    for (const uri of table.external.sourceUris) {
      const bucket = uri.replace('gs://', '').split('/')[0]!;
      if (!this.options.foreignBuckets?.includes(bucket)) {
        const granted = this.policies.get(bucket)?.bindings.some((b) => b.role === 'roles/storage.objectViewer' && b.members.includes(member));
        const grantedAt = this.grantedAt.get(`${bucket} ${member}`) ?? 0;
        if (!granted || Date.now() - grantedAt < (this.options.propagationMs ?? 0)) {
          fail('accessDenied', `Permission denied while globbing file pattern. ${connection?.serviceAccountId} does not have storage.objects.list access to the Google Cloud Storage bucket. Permission 'storage.objects.list' denied on resource (or it may not exist).`);
          return undefined;
        }
      }
      const pattern = new RegExp(`^${uri.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
      for (const object of await this.listGcs(uri.split('*')[0]!)) if (pattern.test(object.uri)) objects.push(object);
    }
    return objects;
  }

  private async listGcs(prefixUri: string): Promise<GcsObject[]> {
    const [bucket, ...rest] = prefixUri.replace('gs://', '').split('/');
    const response = await fetch(`${this.options.fakeGcsUrl}/storage/v1/b/${bucket}/o?prefix=${encodeURIComponent(rest.join('/'))}`);
    const body = (await response.json()) as { items?: { name: string; generation: string }[] };
    return (body.items ?? []).map((item) => ({ uri: `gs://${bucket}/${item.name}`, name: item.name, generation: String(item.generation) }));
  }

  // ---- Connection API, Resource Manager, Reservation API ----

  private getConnection(name: string): [number, unknown] {
    const connection = this.connections.get(name);
    if (!connection) return googleError(404, 'NOT_FOUND', `Not found: Connection ${name}`);
    return [200, { name, cloudResource: { serviceAccountId: connection.serviceAccountId } }];
  }

  private createConnection(parent: string, body: Record<string, unknown>, url: URL): [number, unknown] {
    const id = url.searchParams.get('connectionId');
    if (!id) throw new Error('connectionId is required');
    if (!body.cloudResource) throw new Error('connection.cloudResource is required (objinfer creates Cloud resource connections)');
    const name = `${parent}/connections/${id}`;
    if (this.connections.has(name)) return googleError(409, 'ALREADY_EXISTS', `Connection ${name} already exists`);
    this.connections.set(name, { serviceAccountId: `bqcx-1234-${this.connections.size}@gcp-sa-bigquery-condel.iam.gserviceaccount.com` });
    return this.getConnection(name);
  }

  private deleteConnection(name: string): [number, unknown] {
    if (!this.connections.delete(name)) return googleError(404, 'NOT_FOUND', `Not found: Connection ${name}`);
    return [200, {}];
  }

  private testProjectPermissions(body: Record<string, unknown>): [number, unknown] {
    const asked = (body.permissions as string[]) ?? [];
    if (asked.length === 0) throw new Error('permissions is required');
    return [200, { permissions: asked.filter((p) => !this.options.missingPermissions?.includes(p)) }];
  }

  private searchAssignments(): [number, unknown] {
    const assigned = this.options.hasReservationAssignment || [...this.reservations.values()].some((r) => r.assignments.length > 0);
    return [200, { assignments: assigned ? [{ name: 'x/assignments/1', assignee: `projects/${this.options.project}`, jobType: 'QUERY' }] : [] }];
  }

  private getReservation(name: string): [number, unknown] {
    if (!this.reservations.has(name)) return googleError(404, 'NOT_FOUND', `Not found: Reservation ${name}`);
    return [200, { name }];
  }

  private createReservation(parent: string, body: Record<string, unknown>, url: URL): [number, unknown] {
    const id = url.searchParams.get('reservationId');
    if (!id || !body.edition) throw new Error('reservationId and reservation.edition are required');
    const name = `${parent}/reservations/${id}`;
    if (this.reservations.has(name)) return googleError(409, 'ALREADY_EXISTS', `Reservation ${name} already exists`);
    this.reservations.set(name, { assignments: [] });
    return [200, { name, ...body }];
  }

  private deleteReservation(name: string): [number, unknown] {
    if (!this.reservations.delete(name)) return googleError(404, 'NOT_FOUND', `Not found: Reservation ${name}`);
    return [200, {}];
  }

  private listAssignments(name: string): [number, unknown] {
    return [200, { assignments: this.reservations.get(name)?.assignments ?? [] }];
  }

  private createAssignment(name: string, body: Record<string, unknown>): [number, unknown] {
    const reservation = this.reservations.get(name);
    if (!reservation) return googleError(404, 'NOT_FOUND', `Not found: Reservation ${name}`);
    if (!body.assignee || !body.jobType) throw new Error('assignee and jobType are required');
    const assignment = { name: `${name}/assignments/${reservation.assignments.length + 1}`, ...body };
    reservation.assignments.push(assignment);
    return [200, assignment];
  }

  // ---- bucket IAM ----

  private getPolicy(bucket: string): [number, unknown] {
    if (this.options.foreignBuckets?.includes(bucket)) return googleError(403, 'PERMISSION_DENIED', `caller does not have storage.buckets.getIamPolicy access to ${bucket}`);
    const policy = this.policies.get(bucket) ?? { bindings: [{ role: 'roles/storage.legacyBucketOwner', members: ['projectOwner:p'] }], version: 1 };
    this.policies.set(bucket, policy);
    return [200, { kind: 'storage#policy', resourceId: `projects/_/buckets/${bucket}`, version: 1, etag: `etag-${policy.version}`, bindings: policy.bindings }];
  }

  private setPolicy(bucket: string, body: Record<string, unknown>): [number, unknown] {
    const current = this.policies.get(bucket);
    if (!current) throw new Error('read the policy before writing it');
    if (this.options.concurrentPolicyChange && !this.concurrentChangeDone) {
      this.concurrentChangeDone = true; // someone else wins the race: their binding must survive ours
      current.bindings.push({ role: 'roles/storage.objectAdmin', members: ['user:someone-else@example.com'] });
      current.version++;
    }
    if (body.etag !== `etag-${current.version}`) return googleError(412, 'FAILED_PRECONDITION', 'Precondition Failed: the policy changed since it was read');
    const before = new Set(current.bindings.flatMap((b) => b.members.map((m) => `${b.role} ${m}`)));
    current.bindings = (body.bindings as { role: string; members: string[] }[]) ?? [];
    current.version++;
    for (const b of current.bindings) for (const m of b.members) if (!before.has(`${b.role} ${m}`)) this.grantedAt.set(`${bucket} ${m}`, Date.now());
    return this.getPolicy(bucket);
  }

  private testBucketPermissions(bucket: string, url: URL): [number, unknown] {
    const asked = url.searchParams.getAll('permissions');
    return [200, { kind: 'storage#testIamPermissionsResponse', permissions: this.options.foreignBuckets?.includes(bucket) ? [] : asked }];
  }
}

function splitRef(ref: string, project: string): [string, string] {
  const parts = ref.split('.');
  if (parts.length !== 3 || parts[0] !== project) throw new Error(`unexpected reference ${ref}`);
  return [parts[1]!, parts[2]!];
}

/** Whether `uri` is in the batch the statement's FARM_FINGERPRINT predicates select. */
function inSlice(sql: string, alias: string, uri: string): boolean {
  const batch = sql.match(new RegExp(`MOD\\(ABS\\(FARM_FINGERPRINT\\(${alias}\\.uri\\)\\), (\\d+)\\) = (\\d+)`));
  if (!batch) throw new Error('expected a batch predicate');
  const mod = (value: string, k: bigint) => {
    const fingerprint = BigInt(bigqueryFingerprint(value));
    return (fingerprint < 0n ? -fingerprint : fingerprint) % k;
  };
  if (mod(uri, BigInt(batch[1]!)) !== BigInt(batch[2]!)) return false;
  for (const split of sql.matchAll(new RegExp(`MOD\\(ABS\\(FARM_FINGERPRINT\\(CONCAT\\('objinfer-split-(\\d+):', ${alias}\\.uri\\)\\)\\), 2\\) = (\\d)`, 'g'))) {
    if (mod(`objinfer-split-${split[1]}:${uri}`, 2n) !== BigInt(split[2]!)) return false;
  }
  return true;
}

function decodeParams(parameters: unknown[]): Params {
  const out: Params = {};
  type Parameter = { name: string; parameterType: { type: string }; parameterValue?: { value?: string; arrayValues?: { value: string }[] } };
  for (const parameter of parameters as Parameter[]) {
    if (!parameter.name || !parameter.parameterType?.type) throw new Error('query parameters need a name and a type');
    out[parameter.name] = parameter.parameterType.type === 'ARRAY'
      ? (parameter.parameterValue?.arrayValues ?? []).map((v) => v.value)
      : parameter.parameterValue?.value;
  }
  return out;
}
