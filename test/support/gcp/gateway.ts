/**
 * One endpoint standing in for Google in the gcp tests. Every request is first matched to
 * a method of Google's discovery documents and checked against its schema (see
 * discovery.ts); a request that does not match, or breaks the schema, is refused and
 * recorded in `violations`, which every test asserts empty. Every statement is analysed as
 * written by Google's ZetaSQL analyser (zetasql.ts), and refused as BigQuery would if it
 * does not pass. Then it goes to:
 * - the BigQuery emulator: datasets, tables, table data and every statement, through the
 *   test-only shim (shim.ts) for what the emulator lacks;
 * - fake-gcs-server: Cloud Storage objects and buckets;
 * - the stand-in (standIn.ts): Connection, Reservation, Resource Manager, bucket IAM and
 *   BigQuery models. Its answers are checked against the response schemas too.
 * Known emulator quirks are handled here, never in the product: FLOAT is 32-bit there
 * (schemas are sent as FLOAT64), a duplicate job ID is a 400 there (answered 409 as
 * BigQuery does), declared parameter types are ignored there (written in as literals),
 * it calls a statement its analyser refuses a jobInternalError (BigQuery: invalidQuery),
 * it runs a query while inserting the job (a failure of the shim's decode check is
 * answered as a job that fails later, as BigQuery's do), and its MOD and ABS lose the low
 * bits of 64-bit integers (MOD(ABS(FARM_FINGERPRINT(x)), n) is computed exactly instead).
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Discovery, type MatchedMethod } from './discovery';
import type { Emulator } from './emulator';
import { BigQueryShim, DECODE_FAILURE_MARKER, exactFingerprintMod, withParametersInline } from './shim';
import { googleError, StandIn, type Answer, type StandInOptions } from './standIn';
import type { Row } from './types';
import { analysisRequest } from './catalog';
import type { AnalysisRequest, QueryParameter, ZetaSqlAnalyser } from './zetasql';

export interface GatewayOptions extends StandInOptions {
  fakeGcsUrl: string;
  emulator: Emulator;
  labels: string[];
  /** The response to the first insert of each ML.PREDICT job is lost (the job is created). */
  loseFirstBatchInsertResponse?: boolean;
  /**
   * TEST INJECTION: ML.PREDICT jobs fail while they run with this reason and message: every
   * one, or only batches (not the canary), or only the first `count` of them.
   */
  failPredict?: { reason?: string; message: string; only?: 'batches'; count?: number };
  /** A metadata refresh job is still running for this many gets (a big bucket's refresh takes minutes). */
  refreshGets?: number;
  /** Google's ZetaSQL analyser: every statement is analysed as written before it runs. */
  analyser?: ZetaSqlAnalyser;
  /** The test makes BigQuery refuse a statement: a refusal is then not a violation. */
  refusalsExpected?: boolean;
}

interface SyntheticJob {
  resource: Row;
  /** A job that runs on: the next get finds it done (or failed). */
  pendingGets: number;
  error?: { reason?: string; message: string };
}

let discovery: Discovery | undefined;

export class Gateway {
  url = '';
  readonly standIn: StandIn;
  readonly shim: BigQueryShim;
  /** Requests that do not match Google's documents: each one a test failure. */
  readonly violations: string[] = [];
  /** `METHOD id` of every request, in order. */
  readonly calls: string[] = [];
  /** The SQL of every job inserted (as the backend wrote it), in order; a re-attach adds none. */
  readonly statements: string[] = [];
  /** Every statement ZetaSQL analysed (dry runs too), with the kinds of statement it found. */
  readonly analysed: { sql: string; params: QueryParameter[]; kinds: string[] }[] = [];
  /** Table schemas the analyser's catalog read, cleared whenever a table may change. */
  private readonly schemas = new Map<string, unknown[]>();
  /** ZetaSQL's message for each statement it refused. */
  readonly refused: string[] = [];
  private readonly jobIds = new Set<string>();
  private readonly synthetic = new Map<string, SyntheticJob>();
  private readonly lost = new Set<string>();
  private injected = 0;
  /** When each job was inserted (ms), by job ID, in order. */
  readonly insertedAt: { jobId: string; at: number }[] = [];
  /** Answers that came from an emulator (checked by nobody here: they are not ours). */
  private readonly forwarded = new WeakSet<Answer>();
  private server?: Server;

  constructor(readonly options: GatewayOptions) {
    discovery ??= new Discovery();
    this.standIn = new StandIn(options);
    this.shim = new BigQueryShim({ project: options.project, gcsUrl: options.fakeGcsUrl, labels: options.labels }, options.emulator.direct, this.standIn);
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((done) => this.server!.listen(0, '127.0.0.1', () => done()));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((done) => this.server?.close(() => done()));
  }

  /** Batch scripts that ran (not dry runs), as the backend wrote them: the ones that write predictions. */
  get batchStatements(): string[] {
    return this.statements.filter((s) => s.includes('ML.PREDICT') && s.startsWith('INSERT'));
  }

  /** Canary queries that ran: ML.PREDICT that writes nothing. */
  get canaryStatements(): string[] {
    return this.statements.filter((s) => s.includes('ML.PREDICT') && s.startsWith('SELECT'));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://gateway');
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    const matched = discovery!.match(req.method ?? 'GET', url.pathname);
    if (!matched) {
      this.violations.push(`no method in Google's discovery documents for ${req.method} ${url.pathname}`);
      return this.reply(res, googleError(501, 'UNIMPLEMENTED', `not a Google API method: ${req.method} ${url.pathname}`));
    }
    this.calls.push(`${req.method} ${matched.method.id}`);
    if (/^bigquery\.tables\.(insert|patch|update|delete)$/.test(matched.method.id)) this.schemas.clear();
    const bucket = url.pathname.match(/^\/storage\/v1\/b\/([^/]+)/)?.[1];
    if (!req.headers.authorization && bucket && this.options.privateBuckets?.includes(decodeURIComponent(bucket))) {
      // Without credentials, only public buckets answer.
      return this.reply(
        res,
        googleError(401, 'UNAUTHENTICATED', 'Anonymous caller does not have storage.objects.list access to the Google Cloud Storage bucket.'),
      );
    }
    const isJson = /json/.test(req.headers['content-type'] ?? '') && raw.length > 0;
    const body = isJson ? (JSON.parse(raw.toString()) as Row) : undefined;
    const problems = discovery!.checkRequest(matched, url.searchParams, body);
    if (problems.length) {
      this.violations.push(...problems);
      return this.reply(res, googleError(400, 'INVALID_ARGUMENT', problems.join('; ')));
    }
    try {
      const answer = await this.route(matched, url, body, raw, req, res);
      if (answer === 'answered') return;
      const [status, payload] = answer;
      // What the emulators answer is theirs; what this file makes up must be in Google's shapes.
      if (status < 300 && !this.forwarded.has(answer)) this.checkAnswer(matched, payload);
      this.reply(res, answer);
    } catch (error) {
      this.violations.push(`gateway failed on ${matched.method.id}: ${(error as Error).stack}`);
      this.reply(res, googleError(500, 'INTERNAL', (error as Error).message));
    }
  }

  private checkAnswer(matched: MatchedMethod, payload: unknown): void {
    for (const problem of discovery!.checkResponse(matched, payload)) this.violations.push(`stand-in answered outside the schema: ${problem}`);
  }

  private reply(res: ServerResponse, [status, body]: Answer): void {
    if (body instanceof Media) {
      res.writeHead(status, body.headers);
      res.end(body.bytes);
      return;
    }
    if (status === 204 || body === undefined) {
      res.writeHead(status === 200 ? 204 : status);
      res.end();
      return;
    }
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  private async route(
    matched: MatchedMethod,
    url: URL,
    body: Row | undefined,
    raw: Buffer,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<Answer | 'answered'> {
    const { method, params } = matched;
    const s = this.standIn;
    switch (method.id) {
      case 'bigqueryconnection.projects.locations.connections.get':
        return s.getConnection(params.name!);
      case 'bigqueryconnection.projects.locations.connections.create':
        return s.createConnection(params.parent!, url.searchParams.get('connectionId'), body ?? {});
      case 'bigqueryconnection.projects.locations.connections.delete':
        return s.deleteConnection(params.name!);
      case 'cloudresourcemanager.projects.testIamPermissions':
        return s.testProjectPermissions(body ?? {});
      case 'bigqueryreservation.projects.locations.searchAllAssignments':
        return s.searchAssignments(url.searchParams.get('query'));
      case 'bigqueryreservation.projects.locations.reservations.get':
        return s.getReservation(params.name!);
      case 'bigqueryreservation.projects.locations.reservations.create':
        return s.createReservation(params.parent!, url.searchParams.get('reservationId'), body ?? {});
      case 'bigqueryreservation.projects.locations.reservations.delete':
        return s.deleteReservation(params.name!);
      case 'bigqueryreservation.projects.locations.reservations.assignments.list':
        return s.listAssignments(params.parent!);
      case 'bigqueryreservation.projects.locations.reservations.assignments.create':
        return s.createAssignment(params.parent!, body ?? {});
      case 'bigqueryreservation.projects.locations.reservations.assignments.delete':
        return s.deleteAssignment(params.name!);
      case 'storage.buckets.getIamPolicy':
        return s.getPolicy(params.bucket!);
      case 'storage.buckets.setIamPolicy':
        return s.setPolicy(params.bucket!, body ?? {});
      case 'storage.buckets.testIamPermissions':
        return s.testBucketPermissions(params.bucket!, url.searchParams.getAll('permissions'));
      case 'bigquery.models.get':
        return s.modelResource(params.projectId!, params.datasetId!, params.modelId!);
      case 'bigquery.models.patch':
        return s.patchModel(params.projectId!, params.datasetId!, params.modelId!, body ?? {});
      case 'bigquery.models.delete':
        return s.deleteModel(params.projectId!, params.datasetId!, params.modelId!);
      case 'bigquery.jobs.insert':
        return this.insertJob(params.projectId!, body ?? {}, req, res);
      case 'bigquery.jobs.query': {
        // The synchronous query API (reads): the same quirks as a job's statement.
        const request = body as { query: string; queryParameters?: Parameters<typeof withParametersInline>[1] };
        // A read of what a first run creates (the plan counting the object table) is refused as not found, as BigQuery does.
        const refusal = await this.analyse(request.query, request.queryParameters ?? [], true);
        if (refusal) return /not found/i.test(refusal) ? googleError(404, 'NOT_FOUND', refusal) : googleError(400, 'INVALID_ARGUMENT', refusal);
        await this.shim.beforeQuery(request.query);
        const query = exactFingerprintMod(withParametersInline(request.query, request.queryParameters ?? []));
        return this.forward(
          this.options.emulator.url,
          'POST',
          url,
          Buffer.from(JSON.stringify({ ...request, query, queryParameters: undefined, parameterMode: undefined })),
        );
      }
      case 'bigquery.jobs.get':
      case 'bigquery.jobs.getQueryResults':
      case 'bigquery.jobs.cancel': {
        const synthetic = this.synthetic.get(params.jobId!);
        if (synthetic) return this.answerSynthetic(method.id, synthetic);
        return this.forward(this.options.emulator.url, req.method!, url, raw);
      }
      case 'bigquery.tables.insert':
      case 'bigquery.tables.patch':
      case 'bigquery.tables.update':
        return this.forward(this.options.emulator.url, req.method!, url, Buffer.from(JSON.stringify(float64(body ?? {}))));
      case 'bigquery.tables.get': {
        const answer = await this.forward(this.options.emulator.url, req.method!, url, raw);
        const table = this.shim.objectTables.get(`${params.projectId}.${params.datasetId}.${params.tableId}`);
        if (answer[0] !== 200 || !table) return answer;
        // What BigQuery says of an object table; the emulator holds a plain table standing in for it.
        const { schema: _schema, numRows: _rows, numBytes: _bytes, ...rest } = answer[1] as Row;
        return [
          200,
          {
            ...rest,
            type: 'EXTERNAL',
            ...(table.maxStaleness ? { maxStaleness: table.maxStaleness } : {}),
            externalDataConfiguration: {
              sourceUris: table.sourceUris,
              // The discovery document's path form, not the DDL's dotted one the backend wrote.
              connectionId: connectionPath(table.connection),
              objectMetadata: 'SIMPLE',
              metadataCacheMode: table.metadataCacheMode,
            },
          },
        ];
      }
      default:
        if (matched.service === 'storage.v1') return this.forward(this.options.fakeGcsUrl, req.method!, url, raw, req.headers['content-type']);
        if (matched.service === 'bigquery.v2') return this.forward(this.options.emulator.url, req.method!, url, raw);
        this.violations.push(`the stand-in does not answer ${method.id}`);
        return googleError(501, 'UNIMPLEMENTED', `stand-in does not answer ${method.id}`);
    }
  }

  /**
   * ZetaSQL's analysis of a statement as the backend wrote it. A refusal is BigQuery's
   * invalidQuery, and a violation (but for a plan's dry run or read over what a first run creates).
   */
  private async analyse(sql: string, params: QueryParameter[], mayMissTables: boolean): Promise<string | undefined> {
    const analyser = this.options.analyser;
    if (!analyser) return undefined;
    const analysis = await analyser.analyse(await this.analysisRequest(sql, params));
    this.analysed.push({ sql, params, kinds: analysis.ok ? analysis.kinds : [] });
    if (analysis.ok) return undefined;
    this.refused.push(analysis.error);
    // A plan's dry run or read over tables a first run creates is refused as not found, as BigQuery does.
    const expected = this.options.refusalsExpected || (mayMissTables && /(^|: )(Table|Model) not found/.test(analysis.error));
    if (!expected) this.violations.push(`ZetaSQL refused a statement: ${analysis.error}\n${sql}`);
    return analysis.error;
  }

  /** The catalog BigQuery would hold for a statement now (catalog.ts). */
  analysisRequest(sql: string, params: QueryParameter[]): Promise<AnalysisRequest> {
    return analysisRequest(sql, params, {
      analyser: this.options.analyser!,
      emulator: this.options.emulator,
      shim: this.shim,
      standIn: this.standIn,
      schemas: this.schemas,
    });
  }

  private async insertJob(project: string, body: Row, req: IncomingMessage, res: ServerResponse): Promise<Answer | 'answered'> {
    const configuration = body.configuration as
      { dryRun?: boolean; query?: { query?: string; queryParameters?: Parameters<typeof withParametersInline>[1] } } | undefined;
    const reference = (body.jobReference as { jobId?: string } | undefined) ?? {};
    const jobId = reference.jobId ?? `gateway_${this.jobIds.size}_${Date.now()}`;
    const sql = configuration?.query?.query;
    if (!sql)
      return this.forward(this.options.emulator.url, 'POST', new URL(`/bigquery/v2/projects/${project}/jobs`, 'http://x'), Buffer.from(JSON.stringify(body)));
    const dryRun = Boolean(configuration?.dryRun);
    if (!dryRun) {
      if (this.jobIds.has(jobId)) return googleError(409, 'ALREADY_EXISTS', `Already Exists: Job ${project}:US.${jobId}`);
      this.jobIds.add(jobId);
      this.statements.push(sql);
      this.insertedAt.push({ jobId, at: Date.now() });
    }
    const job = (state: string, error?: { reason: string; message: string }): Row => ({
      kind: 'bigquery#job',
      id: `${project}:US.${jobId}`,
      jobReference: { projectId: project, jobId, location: 'US' },
      configuration: { jobType: 'QUERY', dryRun, query: { query: sql, useLegacySql: false } },
      status: { state, ...(error ? { errorResult: error, errors: [error] } : {}) },
      statistics: { creationTime: String(Date.now()), totalBytesProcessed: '0', query: { totalBytesProcessed: '0', statementType: 'SCRIPT' } },
    });
    const refusal = await this.analyse(sql, configuration?.query?.queryParameters ?? [], dryRun);
    if (/\b(CREATE|DROP|ALTER)\b/.test(sql)) this.schemas.clear();
    // A dry run BigQuery refuses is an HTTP error: 404 for what does not exist yet, else 400.
    if (refusal && dryRun) return /not found/i.test(refusal) ? googleError(404, 'NOT_FOUND', refusal) : googleError(400, 'INVALID_ARGUMENT', refusal);
    const synthetic = async (work: () => Promise<void>): Promise<Answer> => {
      if (dryRun) return [200, job('DONE')];
      // The job exists from its insert on: a get while the work runs finds it running.
      const record: SyntheticJob = { resource: job('RUNNING'), pendingGets: Infinity };
      this.synthetic.set(jobId, record);
      await work().catch((e: Error & { reason?: string }) => (record.error = { reason: 'reason' in e ? e.reason : 'invalidQuery', message: e.message }));
      record.pendingGets = /^CALL BQ\.REFRESH_EXTERNAL_METADATA_CACHE/.test(sql) ? (this.options.refreshGets ?? 1) : 1;
      return [200, record.resource];
    };
    if (refusal) return synthetic(() => Promise.reject(Object.assign(new Error(refusal), { reason: 'invalidQuery' })));
    if (/^CREATE OR REPLACE EXTERNAL TABLE/.test(sql)) return synthetic(() => this.shim.createObjectTable(sql));
    if (/^CALL BQ\.REFRESH_EXTERNAL_METADATA_CACHE/.test(sql)) return synthetic(() => this.shim.refresh(sql));
    if (/^CREATE OR REPLACE MODEL/.test(sql)) return synthetic(() => this.shim.createModel(sql));
    const inject = this.options.failPredict;
    if (
      !dryRun &&
      inject &&
      sql.includes('ML.PREDICT') &&
      (inject.only !== 'batches' || sql.startsWith('INSERT')) &&
      this.injected < (inject.count ?? Infinity)
    ) {
      this.injected++;
      return synthetic(() => Promise.reject(Object.assign(new Error(inject.message), { reason: inject.reason })));
    }

    let rewritten: string;
    try {
      await this.shim.beforeQuery(sql);
      rewritten = exactFingerprintMod(withParametersInline(this.shim.rewritePredict(sql), configuration?.query?.queryParameters ?? []));
    } catch (error) {
      return synthetic(() => Promise.reject(error));
    }
    const forwarded = {
      ...body,
      configuration: { ...(body.configuration as Row), query: { ...(configuration!.query as Row), query: rewritten, queryParameters: undefined } },
    };
    const [status, answer] = await this.forward(
      this.options.emulator.url,
      'POST',
      new URL(`/bigquery/v2/projects/${project}/jobs`, 'http://x'),
      Buffer.from(JSON.stringify(forwarded)),
    );
    const errorResult = (answer as { status?: { errorResult?: { message?: string } } })?.status?.errorResult;
    if (status === 200 && errorResult?.message?.includes(DECODE_FAILURE_MARKER)) {
      // The engine met an object the shim's model cannot decode: a job that fails while it runs.
      const uri = errorResult.message.split(DECODE_FAILURE_MARKER)[1]?.trim();
      const record: SyntheticJob = {
        resource: job('RUNNING'),
        pendingGets: 1,
        error: { reason: 'invalidQuery', message: `Error while decoding image ${uri}: not a JPEG, PNG or BMP image` },
      };
      this.synthetic.set(jobId, record);
      return [200, record.resource];
    }
    if (status === 200 && errorResult && /^failed to analyze/.test(errorResult.message ?? '')) {
      // Emulator quirk: it calls a statement the analyser refuses "jobInternalError"; BigQuery says invalidQuery.
      const refused = { reason: 'invalidQuery', location: 'query', message: errorResult.message!.replace(/^failed to analyze: INVALID_ARGUMENT: /, '') };
      return [200, { ...(answer as Row), status: { state: 'DONE', errorResult: refused, errors: [refused] } }];
    }
    if (!dryRun && this.options.loseFirstBatchInsertResponse && sql.includes('ML.PREDICT') && !this.lost.has(jobId)) {
      this.lost.add(jobId);
      req.socket.destroy(); // the job ran; its answer never arrives
      return 'answered';
    }
    void res;
    return [status, answer];
  }

  private answerSynthetic(methodId: string, job: SyntheticJob): Answer {
    if (methodId === 'bigquery.jobs.cancel') {
      if ((job.resource.status as Row).state !== 'DONE') job.error = { reason: 'stopped', message: 'Job execution was cancelled: User requested cancellation' };
      job.pendingGets = 0;
    }
    if (job.pendingGets-- <= 0) {
      job.resource = { ...job.resource, status: { state: 'DONE', ...(job.error ? { errorResult: job.error, errors: [job.error] } : {}) } };
    }
    if (methodId === 'bigquery.jobs.cancel') return [200, { kind: 'bigquery#jobCancelResponse', job: job.resource }];
    if (methodId === 'bigquery.jobs.getQueryResults') {
      const done = (job.resource.status as Row).state === 'DONE';
      if (done && job.error) return googleError(400, 'INVALID_ARGUMENT', job.error.message);
      return [
        200,
        {
          kind: 'bigquery#getQueryResultsResponse',
          jobComplete: done,
          jobReference: job.resource.jobReference,
          totalRows: '0',
          rows: [],
          schema: { fields: [] },
        },
      ];
    }
    return [200, job.resource];
  }

  private forward(base: string, method: string, url: URL, body: Buffer, contentType?: string): Promise<Answer> {
    const target = new URL(url.pathname + url.search, base);
    return new Promise((done, fail) => {
      const forward = httpRequest(
        target,
        { method, headers: { 'content-type': contentType ?? 'application/json', 'content-length': String(body.length) } },
        (answer) => {
          const chunks: Buffer[] = [];
          answer.on('data', (c: Buffer) => chunks.push(c));
          answer.on('end', () => {
            const bytes = Buffer.concat(chunks);
            if (!/json/.test(answer.headers['content-type'] ?? 'application/json') && (answer.statusCode ?? 502) < 300) {
              // An object's own bytes (storage.objects.get with alt=media), passed on as they came.
              const headers = Object.fromEntries(
                ['content-type', 'x-goog-hash', 'x-goog-generation'].flatMap((h) => (answer.headers[h] ? [[h, answer.headers[h]!]] : [])),
              );
              const answered: Answer = [answer.statusCode!, new Media(bytes, headers)];
              this.forwarded.add(answered);
              return done(answered);
            }
            const text = bytes.toString();
            let payload: unknown = undefined;
            try {
              payload = text ? JSON.parse(text) : undefined;
            } catch {
              payload = { error: { code: answer.statusCode, message: text } };
            }
            let status = answer.statusCode ?? 502;
            // Emulator quirk: an existing job ID is a 400 there, a 409 at BigQuery.
            if (status === 400 && /is already created|already exists/i.test(text) && url.pathname.endsWith('/jobs')) status = 409;
            const answered: Answer = [status, payload];
            this.forwarded.add(answered);
            done(answered);
          });
        },
      );
      forward.on('error', fail);
      forward.end(body);
    });
  }
}

/** A media answer: bytes that are not JSON, with the headers that describe them. */
class Media {
  constructor(
    readonly bytes: Buffer,
    readonly headers: Record<string, string | string[]>,
  ) {}
}

/** `project.location.id` as `projects/{project}/locations/{location}/connections/{id}`, a form bigquery.v2 documents. */
function connectionPath(reference: string): string {
  const [project, location, id] = reference.split('.');
  return `projects/${project}/locations/${location}/connections/${id}`;
}

/** Emulator quirk: its FLOAT is 32-bit; BigQuery's FLOAT is FLOAT64. */
function float64(body: Row): Row {
  const fix = (fields: Row[] | undefined): Row[] | undefined =>
    fields?.map((f) => ({ ...f, type: f.type === 'FLOAT' ? 'FLOAT64' : f.type, fields: fix(f.fields as Row[] | undefined) }));
  const schema = body.schema as { fields?: Row[] } | undefined;
  return schema?.fields ? { ...body, schema: { ...schema, fields: fix(schema.fields) } } : body;
}
