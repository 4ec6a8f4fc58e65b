/**
 * The local backend: the whole procedure on one machine, offline. The dataset is a
 * DuckDB schema, the bucket a folder, the connection and its grants rows in the
 * warehouse, the object table a listing of file:// patterns, and the model an ONNX file
 * run by ONNX Runtime, with images decoded and resized as BigQuery does (src/images).
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { listValue, structValue, type DuckDBValue } from '@duckdb/node-api';
import type { PipelineConfig } from '../../config';
import { parseDuration } from '../../duration';
import { ErrorType, ObjinferError } from '../../errors';
import type {
  Backend, BatchPlan, BatchProgress, BatchRequest, BatchResult, ConnectionInfo, ModelArtifact, ModelDescription,
  ErrorRow, PlannedCall, PreflightReport, ResultRow, StepOutcome,
} from '../backend';
import { assertConnectionCanRead, findGrant, localServiceAccount, OBJECT_VIEWER } from './iam';
import { cpuTurn } from './runtime';
import { classifyInRuns, runCount, type Failure, type PendingObject, type Prediction } from './inference';
import { loadSession, signature, topK } from './runtime';
import { BOOKKEEPING_DDL, errorsDdl, labelsDdl, objectTableDdl, resultsDdl, TOP_K_TYPE } from './schema';
import { copyIfChanged, listObjects, md5Base64, objectPath, patternRoot, pathToUri, uriToPath } from './storage';
import { quote, Warehouse, type Db } from './warehouse';

export class LocalBackend implements Backend {
  private readonly warehouse: Warehouse;
  private readonly ds: string;

  constructor(private readonly config: PipelineConfig) {
    this.warehouse = new Warehouse(config.local.warehouse);
    this.ds = quote(config.dataset);
  }

  /** Opens the warehouse, creating objinfer's bookkeeping tables on first use in this process. */
  private async use<T>(work: (db: Db) => Promise<T>): Promise<T> {
    return this.warehouse.use(async (db) => {
      await ensureBookkeeping(db, this.config.local.warehouse);
      return work(db);
    });
  }

  private async transaction<T>(work: (db: Db) => Promise<T>): Promise<T> {
    return this.use((db) => db.transaction(() => work(db)));
  }

  private get bucketPath(): string {
    return join(this.config.local.storage, this.config.bucket);
  }

  private get bucketUri(): string {
    return pathToUri(this.bucketPath);
  }

  private table(name: string): string {
    return `${this.ds}.${quote(name)}`;
  }

  private get serviceAccount(): string {
    const { project, location, connection } = this.config;
    return localServiceAccount(project, location, connection);
  }

  private get propagationDelayMs(): number {
    return parseDuration(this.config.iam.simulatedPropagationDelay) ?? 0;
  }

  /** The folders the object table reads: the "buckets" of the source patterns. */
  private get imageBuckets(): string[] {
    return [...new Set(this.config.sourceUris.map((uri) => pathToUri(patternRoot(uri))))];
  }

  async preflight(): Promise<PreflightReport> {
    const warnings: string[] = [];
    for (const uri of this.config.sourceUris) {
      const root = patternRoot(uri);
      const info = await stat(root).catch(() => undefined);
      if (!info?.isDirectory()) {
        throw new ObjinferError(ErrorType.InvalidConfig, `sourceUris: folder not found: ${root}; point the pattern at an existing folder`);
      }
    }
    await stat(this.config.model.source).catch(() => {
      throw new ObjinferError(ErrorType.InvalidConfig, `model.source: file not found: ${this.config.model.source}`);
    });
    await this.use(async () => undefined);
    return { warnings };
  }

  async ensureDataset(): Promise<StepOutcome> {
    const { dataset, location } = this.config;
    return this.transaction(async (db) => {
      const existing = await db.one<{ location: string }>('SELECT location FROM _objinfer.datasets WHERE name = $1', [dataset]);
      if (existing && existing.location !== location) {
        throw new ObjinferError(
          ErrorType.ResourceConflict,
          `dataset ${dataset} exists in location ${existing.location}, not ${location}; set location: ${existing.location} or choose another dataset`,
        );
      }
      await db.run(`CREATE SCHEMA IF NOT EXISTS ${this.ds}`);
      if (existing) return { step: 'dataset', action: 'exists', detail: `${dataset} (${location})` };
      await db.run('INSERT INTO _objinfer.datasets VALUES ($1, $2, now())', [dataset, location]);
      return { step: 'dataset', action: 'created', detail: `${dataset} (${location})` };
    });
  }

  /** Reservations are a BigQuery matter: nothing to do on one machine. */
  async ensureReservation(): Promise<StepOutcome[]> {
    return [];
  }

  async ensureConnection(): Promise<ConnectionInfo> {
    const { project, location, connection } = this.config;
    const serviceAccount = this.serviceAccount;
    const created = await this.transaction(async (db) => {
      const existing = await db.one('SELECT 1 FROM _objinfer.connections WHERE project = $1 AND location = $2 AND name = $3', [project, location, connection]);
      if (existing) return false;
      await db.run('INSERT INTO _objinfer.connections VALUES ($1, $2, $3, $4, now())', [project, location, connection, serviceAccount]);
      return true;
    });
    const detail = `${project}.${location}.${connection} (service account ${serviceAccount})`;
    return { step: 'connection', action: created ? 'created' : 'exists', detail, serviceAccount };
  }

  async ensureBucket(): Promise<StepOutcome> {
    const existed = await stat(this.bucketPath).then((s) => s.isDirectory(), () => false);
    await mkdir(this.bucketPath, { recursive: true });
    if (!existed) await this.use((db) => db.run('INSERT OR IGNORE INTO _objinfer.buckets VALUES ($1, now())', [this.bucketPath]));
    return { step: 'bucket', action: existed ? 'exists' : 'created', detail: this.bucketPath };
  }

  async grantObjectViewer(serviceAccount: string): Promise<StepOutcome[]> {
    const member = `serviceAccount:${serviceAccount}`;
    return this.transaction(async (db) => {
      const outcomes: StepOutcome[] = [];
      for (const bucket of [this.bucketUri, ...this.imageBuckets]) {
        const detail = `${OBJECT_VIEWER} for ${member} on ${bucket}`;
        if (await findGrant(db, bucket, serviceAccount)) {
          outcomes.push({ step: 'grant', action: 'exists', detail });
          continue;
        }
        await db.run('INSERT INTO _objinfer.grants VALUES ($1, $2, $3, now())', [bucket, member, OBJECT_VIEWER]);
        outcomes.push({ step: 'grant', action: 'created', detail });
      }
      return outcomes;
    });
  }

  async uploadModel(): Promise<ModelArtifact> {
    const { model } = this.config;
    const files = [{ source: model.source, name: 'model.onnx' }];
    if (model.labels) files.push({ source: model.labels, name: 'labels.txt' });
    const hash = createHash('sha256');
    for (const file of files) hash.update(file.name).update(await readFile(file.source));
    const version = hash.digest('hex').slice(0, 12);
    const folder = join(this.bucketPath, 'models', model.name, version);
    let uploaded = 0;
    for (const file of files) {
      if (await copyIfChanged(file.source, join(folder, file.name))) uploaded++;
    }
    return {
      step: 'upload model',
      action: uploaded > 0 ? 'created' : 'exists',
      detail: `${basename(model.source)} -> ${pathToUri(folder)}/ (version ${version})`,
      version,
      uri: pathToUri(join(folder, 'model.onnx')),
      filesUploaded: uploaded,
      filesSkipped: files.length - uploaded,
    };
  }

  /**
   * The object table: a snapshot of the objects matching the source patterns, listed
   * through the connection. Unchanged objects keep their row; MD5s are computed only
   * for new generations.
   */
  async ensureObjectTable(): Promise<StepOutcome> {
    const { dataset, objectTable, sourceUris, connection } = this.config;
    const table = this.table(objectTable);
    const known = await this.use(async (db) => {
      for (const bucket of this.imageBuckets) await assertConnectionCanRead(db, bucket, this.serviceAccount, this.propagationDelayMs);
      await db.run(objectTableDdl(dataset, objectTable));
      const rows = await db.all<{ uri: string; generation: bigint }>(`SELECT uri, generation FROM ${table}`);
      return new Map(rows.map((r) => [r.uri, r]));
    });
    const listed = await listObjects(sourceUris);
    const changed: DuckDBValue[][] = [];
    for (const object of listed) {
      const previous = known.get(object.uri);
      if (previous && previous.generation === object.generation) continue;
      const md5 = await md5Base64(objectPath(object.uri));
      changed.push([object.uri, object.generation, object.contentType, BigInt(object.size), md5, object.updated.toISOString()]);
    }
    const listedUris = new Set(listed.map((o) => o.uri));
    const removed = [...known.keys()].filter((uri) => !listedUris.has(uri));
    await this.transaction(async (db) => {
      if (removed.length) await db.run(`DELETE FROM ${table} WHERE list_contains($1::VARCHAR[], uri)`, [listValue(removed)]);
      await db.insertRows(`INSERT OR REPLACE INTO ${table}`, ['', '', '', '', '', '::TIMESTAMPTZ'], changed);
      await db.run(
        `INSERT OR REPLACE INTO _objinfer.object_tables VALUES ($1, $2, $3, $4)`,
        [dataset, objectTable, connection, listValue(sourceUris)],
      );
    });
    return {
      step: 'object table',
      action: known.size === 0 && listed.length > 0 ? 'created' : changed.length || removed.length ? 'updated' : 'exists',
      detail: `${dataset}.${objectTable}: ${listed.length} objects (${changed.length} new or changed, ${removed.length} gone)`,
    };
  }

  async ensureModel(artifact: ModelArtifact): Promise<StepOutcome> {
    const { dataset, model } = this.config;
    return this.transaction(async (db) => {
      const existing = await db.one<{ version: string }>('SELECT version FROM _objinfer.models WHERE dataset = $1 AND name = $2', [dataset, model.name]);
      const detail = `${dataset}.${model.name} model_type=${model.type} model_path=${artifact.uri}`;
      if (existing?.version === artifact.version) return { step: 'model', action: 'exists', detail };
      await db.run('INSERT OR REPLACE INTO _objinfer.models VALUES ($1, $2, $3, $4, $5, now())', [dataset, model.name, artifact.version, model.type, artifact.uri]);
      return { step: 'model', action: existing ? 'updated' : 'created', detail: existing ? `${detail} (was version ${existing.version})` : detail };
    });
  }

  async describeModel(artifact: ModelArtifact): Promise<ModelDescription> {
    await this.use((db) => assertConnectionCanRead(db, this.bucketUri, this.serviceAccount, this.propagationDelayMs));
    const modelPath = uriToPath(artifact.uri);
    const { inputs, outputs } = signature(await loadSession(modelPath));
    const input = inputs[0];
    const output = outputs[0];
    if (!input || !output || inputs.length !== 1) {
      throw new ObjinferError(ErrorType.ModelShapeMismatch, `the model must take one image input and give a score output; it has inputs [${inputs.map((i) => i.name)}] and outputs [${outputs.map((o) => o.name)}]`);
    }
    const shape = `[${input.shape.join(', ')}]`;
    if (input.type !== 'float32' || input.shape.length !== 4 || !(input.shape[3] === 3 || typeof input.shape[3] === 'string')) {
      throw new ObjinferError(ErrorType.ModelShapeMismatch, `model input "${input.name}" is ${input.type} ${shape}; objinfer feeds float32 NHWC images [batch, height, width, 3]`);
    }
    const [, modelHeight, modelWidth] = input.shape;
    const configured = this.config.model.inputSize;
    const fixed = typeof modelHeight === 'number' && typeof modelWidth === 'number' ? ([modelHeight, modelWidth] as [number, number]) : undefined;
    if (configured && fixed && (configured[0] !== fixed[0] || configured[1] !== fixed[1])) {
      throw new ObjinferError(ErrorType.ModelShapeMismatch, `model.inputSize is [${configured.join(', ')}] but model input "${input.name}" expects ${shape} (height ${fixed[0]}, width ${fixed[1]}); remove model.inputSize or set it to [${fixed.join(', ')}]`);
    }
    const inputSize = configured ?? fixed;
    if (!inputSize) {
      throw new ObjinferError(ErrorType.InvalidConfig, `model.inputSize: model input "${input.name}" has no fixed size (${shape}); set model.inputSize to the height and width the model was trained on`);
    }
    const labelsPath = this.config.model.labels ? join(modelPath, '..', 'labels.txt') : undefined;
    const labels = labelsPath ? await readLabels(labelsPath) : undefined;
    const outputClasses = output.shape[output.shape.length - 1];
    const classCount = typeof outputClasses === 'number' ? outputClasses : labels?.length;
    if (classCount === undefined) {
      throw new ObjinferError(ErrorType.InvalidConfig, `model.labels: output "${output.name}" has no fixed class count (${`[${output.shape.join(', ')}]`}); give a labels file`);
    }
    if (labels && labels.length !== classCount) {
      throw new ObjinferError(ErrorType.ModelShapeMismatch, `model.labels has ${labels.length} labels but output "${output.name}" has ${classCount} classes; use the labels file that belongs to this model`);
    }
    return {
      version: artifact.version,
      inputName: input.name,
      outputName: output.name,
      inputSize,
      classCount,
      labelsUri: labelsPath && pathToUri(labelsPath),
      modelUri: artifact.uri,
    };
  }

  async ensureResultTables(model: ModelDescription): Promise<StepOutcome[]> {
    const { dataset, results } = this.config;
    const labelsTable = `${this.config.model.name}_labels`;
    const labels = await labelsFor(model);
    return this.transaction(async (db) => {
      const outcomes: StepOutcome[] = [];
      for (const [name, ddl] of [
        [results.table, resultsDdl(dataset, results.table)],
        [results.errorsTable, errorsDdl(dataset, results.errorsTable)],
        [labelsTable, labelsDdl(dataset, labelsTable)],
      ] as const) {
        const existed = await db.tableExists(dataset, name);
        await db.run(ddl);
        outcomes.push({ step: 'table', action: existed ? 'exists' : 'created', detail: `${dataset}.${name}` });
      }
      await db.insertRows(`INSERT OR IGNORE INTO ${this.table(labelsTable)}`, ['', '', ''], labels.map((label, index) => [model.version, index, label]));
      return outcomes;
    });
  }

  /** Counts what still needs a prediction for this model version and sizes the batches. */
  async planBatches(modelVersion: string): Promise<BatchPlan> {
    const counts = await this.use((db) =>
      db.one<{ seen: bigint; done: bigint }>(
        `SELECT count(*) AS seen, count(*) FILTER (WHERE NOT (${this.pendingPredicate('o', '$1')})) AS done FROM ${this.table(this.config.objectTable)} o`,
        [modelVersion],
      ),
    );
    const objectsSeen = Number(counts?.seen ?? 0);
    const alreadyDone = Number(counts?.done ?? 0);
    const pending = objectsSeen - alreadyDone;
    return { modelVersion, objectsSeen, alreadyDone, pending, batchCount: Math.ceil(pending / this.config.batch.size) };
  }

  /** Objects with neither a prediction nor a recorded failure for this model version. */
  private pendingPredicate(alias: string, versionParam: string): string {
    const { results } = this.config;
    const same = `x.uri = ${alias}.uri AND x.generation = ${alias}.generation AND x.model_version = ${versionParam}`;
    return `NOT EXISTS (SELECT 1 FROM ${this.table(results.table)} x WHERE ${same})
      AND NOT EXISTS (SELECT 1 FROM ${this.table(results.errorsTable)} x WHERE ${same})`;
  }

  private batchPredicate(alias: string): string {
    return `md5_number(${alias}.uri) % CAST($2 AS UHUGEINT) = CAST($3 AS UHUGEINT)`;
  }

  async predictBatch(request: BatchRequest, onProgress?: (progress: BatchProgress) => void, signal?: AbortSignal): Promise<BatchResult> {
    const { modelVersion, batchIndex, batchCount, model } = request;
    // Warehouse work takes its CPU turn too (see cpuTurn): beside an inference run it would stall it.
    const objects = await cpuTurn(() => this.use(async (db) => {
      for (const bucket of this.imageBuckets) await assertConnectionCanRead(db, bucket, this.serviceAccount, this.propagationDelayMs);
      return db.all<PendingObject & Record<string, unknown>>(
        `SELECT o.uri, o.generation, o.size FROM ${this.table(this.config.objectTable)} o
         WHERE ${this.batchPredicate('o')} AND ${this.pendingPredicate('o', '$1')} ORDER BY o.uri`,
        [modelVersion, BigInt(batchCount), BigInt(batchIndex)],
      );
    }));
    const runs = classifyInRuns(objects, model, {
      preserveAspectRatio: this.config.model.preserveAspectRatio,
      onProgress: (imagesDone) => onProgress?.({ imagesDone }),
      signal,
    });
    // Each run's rows land as they are ready: a worker lost mid-batch redoes only the rest.
    // The last run's write also counts the batch, saving the warehouse one more open.
    const last = runCount(objects.length) - 1;
    let index = 0;
    for await (const { predictions, failures } of runs) {
      signal?.throwIfAborted();
      const result = await this.writeBatch(request, predictions, failures, index++ === last);
      if (result) return result;
    }
    return cpuTurn(() => this.use((db) => this.countBatch(db, request)));
  }

  async describePlan(): Promise<PlannedCall[]> {
    const { dataset, objectTable, model, results, local } = this.config;
    return [
      { step: 'preflight', call: `check that ${this.imageBuckets.join(', ')} and ${model.source} exist` },
      { step: 'dataset', call: `CREATE SCHEMA IF NOT EXISTS ${dataset} in ${local.warehouse}` },
      { step: 'connection', call: `record connection ${this.config.connection} (service account ${this.serviceAccount})` },
      { step: 'bucket', call: `mkdir ${this.bucketPath}` },
      { step: 'grant', call: `record ${OBJECT_VIEWER} for the connection on ${[this.bucketUri, ...this.imageBuckets].join(', ')}` },
      { step: 'upload model', call: `copy ${model.source} to ${this.bucketPath}/models/${model.name}/VERSION/ (unless identical)` },
      { step: 'object table', call: `list ${this.config.sourceUris.join(', ')} into ${dataset}.${objectTable}` },
      { step: 'model', call: `record model ${dataset}.${model.name} (ONNX)` },
      { step: 'describe model', call: 'read input/output names and input shape from the ONNX file' },
      { step: 'tables', call: `CREATE TABLE IF NOT EXISTS ${dataset}.${results.table}, ${dataset}.${results.errorsTable}, ${dataset}.${model.name}_labels` },
      { step: 'plan', call: `count objects without a row for this model version; k = ceil(pending / ${this.config.batch.size}) batches by md5_number(uri) % k` },
      { step: 'infer', call: `per batch: decode, resize to the model's input, ONNX Runtime, INSERT OR IGNORE into ${dataset}.${results.table}` },
    ];
  }

  async cleanup(options: { deleteData: boolean }): Promise<StepOutcome[]> {
    const { dataset, objectTable, model, results } = this.config;
    const outcomes: StepOutcome[] = [];
    const note = (step: string, removed: boolean, name: string) =>
      outcomes.push({ step, action: removed ? 'removed' : 'skipped', detail: removed ? `removed ${name}` : `${name} was already gone` });
    await this.transaction(async (db) => {
      const modelRow = await db.one('SELECT 1 FROM _objinfer.models WHERE dataset = $1 AND name = $2', [dataset, model.name]);
      await db.run('DELETE FROM _objinfer.models WHERE dataset = $1 AND name = $2', [dataset, model.name]);
      note('model', !!modelRow, `${dataset}.${model.name}`);
      const dataTables = [results.table, results.errorsTable];
      for (const table of [`${model.name}_labels`, objectTable, ...dataTables]) {
        if (dataTables.includes(table) && !options.deleteData) {
          outcomes.push({ step: 'table', action: 'skipped', detail: `kept ${dataset}.${table} (data: pass --yes to delete it)` });
          continue;
        }
        const existed = await db.tableExists(dataset, table);
        await db.run(`DROP TABLE IF EXISTS ${this.table(table)}`);
        note('table', existed, `${dataset}.${table}`);
      }
      const member = `serviceAccount:${this.serviceAccount}`;
      const grants = await db.all<{ bucket: string }>('SELECT bucket FROM _objinfer.grants WHERE member = $1', [member]);
      await db.run('DELETE FROM _objinfer.grants WHERE member = $1', [member]);
      for (const grant of grants) note('grant', true, `${OBJECT_VIEWER} for ${member} on ${grant.bucket}`);
    });
    const modelFolder = join(this.bucketPath, 'models', model.name);
    const hadFiles = await stat(modelFolder).then(() => true, () => false);
    await rm(modelFolder, { recursive: true, force: true });
    note('model files', hadFiles, modelFolder);
    if (!options.deleteData) {
      outcomes.push({ step: 'dataset', action: 'skipped', detail: `kept ${dataset}, the connection and the bucket (pass --yes to delete them)` });
      return outcomes;
    }
    await this.transaction(async (db) => {
      const ours = await db.one('SELECT 1 FROM _objinfer.buckets WHERE path = $1', [this.bucketPath]);
      if (ours) {
        await rm(this.bucketPath, { recursive: true, force: true });
        await db.run('DELETE FROM _objinfer.buckets WHERE path = $1', [this.bucketPath]);
      }
      note('bucket', !!ours, this.bucketPath);
      const { project, location, connection } = this.config;
      const connectionRow = await db.one('SELECT 1 FROM _objinfer.connections WHERE project = $1 AND location = $2 AND name = $3', [project, location, connection]);
      await db.run('DELETE FROM _objinfer.connections WHERE project = $1 AND location = $2 AND name = $3', [project, location, connection]);
      note('connection', !!connectionRow, connection);
      const datasetRow = await db.one('SELECT 1 FROM _objinfer.datasets WHERE name = $1', [dataset]);
      if (datasetRow) {
        await db.run(`DROP SCHEMA IF EXISTS ${this.ds} CASCADE`);
        await db.run('DELETE FROM _objinfer.datasets WHERE name = $1', [dataset]);
      }
      note('dataset', !!datasetRow, dataset);
    });
    return outcomes;
  }

  async readResults(limit: number): Promise<ResultRow[]> {
    const { dataset, results } = this.config;
    return readWarehouse(this.config, async (db) => {
      if (!(await db.tableExists(dataset, results.table))) return [];
      const rows = await db.all<{ uri: string; generation: bigint; model_version: string; label: string; score: number; top_k: { label: string; index: number; score: number }[]; run_id: string; predicted_at: Date }>(
        `SELECT uri, generation, model_version, label, score, top_k, run_id, predicted_at FROM ${this.table(results.table)}
         ORDER BY predicted_at DESC, uri LIMIT $1`,
        [BigInt(limit)],
      );
      return rows.map((r) => ({
        uri: r.uri, generation: String(r.generation), modelVersion: r.model_version, label: r.label, score: r.score,
        topK: r.top_k.map((t) => ({ label: t.label, index: t.index, score: t.score })),
        runId: r.run_id, predictedAt: r.predicted_at.toISOString(),
      }));
    });
  }

  async readErrors(limit: number): Promise<ErrorRow[]> {
    const { dataset, results } = this.config;
    return readWarehouse(this.config, async (db) => {
      if (!(await db.tableExists(dataset, results.errorsTable))) return [];
      const rows = await db.all<{ uri: string; generation: bigint; model_version: string; error: string; run_id: string; failed_at: Date }>(
        `SELECT * FROM ${this.table(results.errorsTable)} ORDER BY failed_at DESC, uri LIMIT $1`,
        [BigInt(limit)],
      );
      return rows.map((r) => ({
        uri: r.uri, generation: String(r.generation), modelVersion: r.model_version, error: r.error, runId: r.run_id, failedAt: r.failed_at.toISOString(),
      }));
    });
  }

  /** One transaction per run of images: a crash leaves all of its rows or none of them. */
  private async writeBatch(request: BatchRequest, predictions: Prediction[], failures: Failure[], thenCount: boolean): Promise<BatchResult | undefined> {
    const labels = await labelsFor(request.model);
    const now = new Date().toISOString();
    return cpuTurn(() => this.use(async (db) => {
      await db.transaction(() => this.insertRows(db, request, predictions, failures, labels, now));
      return thenCount ? this.countBatch(db, request) : undefined;
    }));
  }

  private async insertRows(db: Db, request: BatchRequest, predictions: Prediction[], failures: Failure[], labels: string[], now: string): Promise<void> {
    const { results } = this.config;
    await db.insertRows(
      `INSERT OR IGNORE INTO ${this.table(results.table)}`,
      ['', '', '', '', '', `::${TOP_K_TYPE}`, '::FLOAT[]', '', '::TIMESTAMPTZ'],
      predictions.map(({ object, scores }) => {
        const best = topK(scores, labels, results.topK);
        return [
          object.uri, object.generation, request.modelVersion, best[0]!.label, best[0]!.score,
          listValue(best.map((b) => structValue({ label: b.label, index: b.index, score: b.score }))),
          results.keepProbabilities ? listValue(Array.from(scores)) : null,
          request.runId, now,
        ];
      }),
    );
    await db.insertRows(
      `INSERT OR IGNORE INTO ${this.table(results.errorsTable)}`,
      ['', '', '', '', '', '::TIMESTAMPTZ'],
      failures.map(({ object, error }) => [object.uri, object.generation, request.modelVersion, error, request.runId, now]),
    );
  }

  /** Counts from the tables, so a retried batch reports what its run wrote, not what this attempt did. */
  private async countBatch(db: Db, request: BatchRequest): Promise<BatchResult> {
    const { results } = this.config;
    const args = [request.modelVersion, BigInt(request.batchCount), BigInt(request.batchIndex), request.runId];
    const where = `WHERE r.model_version = $1 AND ${this.batchPredicate('r')} AND r.run_id = $4`;
    const labelRows = await db.all<{ label: string; n: bigint }>(`SELECT label, count(*) AS n FROM ${this.table(results.table)} r ${where} GROUP BY label`, args);
    const failed = await db.one<{ n: bigint }>(`SELECT count(*) AS n FROM ${this.table(results.errorsTable)} r ${where}`, args);
    const labelCounts = Object.fromEntries(labelRows.map((r) => [r.label, Number(r.n)]));
    return {
      batchIndex: request.batchIndex,
      predicted: Object.values(labelCounts).reduce((a, b) => a + b, 0),
      failed: Number(failed?.n ?? 0),
      labelCounts,
    };
  }
}

/** Reads open the file read-only and wait out a writer's short hold on it. */
async function readWarehouse<T>(config: PipelineConfig, work: (db: Db) => Promise<T>): Promise<T> {
  const path = config.local.warehouse;
  if (!(await stat(path).catch(() => undefined))) {
    throw new ObjinferError(ErrorType.NotFound, `no warehouse at ${path} yet: run the pipeline first (objinfer run --config FILE)`);
  }
  return new Warehouse(path, { readOnly: true, lockTimeoutMs: 30_000 }).use(work);
}

const bookkept = new Set<string>();

async function ensureBookkeeping(db: Db, path: string): Promise<void> {
  if (bookkept.has(path)) return;
  for (const ddl of BOOKKEEPING_DDL) await db.run(ddl);
  bookkept.add(path);
}

async function readLabels(path: string): Promise<string[]> {
  const text = await readFile(path, 'utf8');
  return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0);
}

async function labelsFor(model: ModelDescription): Promise<string[]> {
  if (model.labelsUri) return readLabels(uriToPath(model.labelsUri));
  return Array.from({ length: model.classCount }, (_, i) => `class_${i}`);
}

export function createLocalBackend(config: PipelineConfig): Backend {
  return new LocalBackend(config);
}
