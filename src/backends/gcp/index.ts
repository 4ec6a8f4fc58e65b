/**
 * The gcp backend: the tutorial's procedure against BigQuery, Cloud Storage, the
 * BigQuery Connection API and bucket IAM, with the official clients. Every step is
 * idempotent; what objinfer creates is recorded in the dataset's `_objinfer_created`
 * table, so that cleanup removes that and nothing else.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { TableField } from '@google-cloud/bigquery';
import type { PipelineConfig } from '../../config';
import { ErrorType, ObjinferError } from '../../errors';
import type {
  Backend, BatchPlan, BatchProgress, BatchRequest, BatchResult, ConnectionInfo, ErrorRow, ModelArtifact, ModelDescription, PlannedCall,
  PreflightReport, ResultRow, StepOutcome,
} from '../backend';
import { createGcpClients, type GcpClients, type GcpEndpoints } from './clients';
import { classifyGoogleError, isDecodeError } from './errors';
import { runJob, TRANSIENT_JOB_REASONS } from './jobs';
import {
  batchJobId, countSliceSql, createModelSql, createObjectTableSql, planSql, predictBatchSql, probeObjectTableSql,
  recordFailuresSql, type BatchSlice,
} from './sql';

export const OBJECT_VIEWER = 'roles/storage.objectViewer';

/** The permissions the procedure needs on the project (checked in one call, all missing listed). */
export const REQUIRED_PERMISSIONS = [
  'bigquery.datasets.create',
  'bigquery.connections.create',
  'bigquery.connections.get',
  'bigquery.connections.delegate',
  'bigquery.tables.create',
  'bigquery.tables.update',
  'bigquery.tables.getData',
  'bigquery.jobs.create',
  'bigquery.models.create',
  'bigquery.models.getData',
  'bigquery.models.updateData',
  'storage.buckets.create',
  'storage.buckets.setIamPolicy',
  'storage.objects.create',
  'storage.objects.get',
];

const CREATED_TABLE = '_objinfer_created';
const MAX_SPLIT_DEPTH = 24;
const MAX_JOB_ATTEMPTS = 5;

/** The key every results and errors row has: (uri, generation, model_version). */
const KEY_FIELDS: TableField[] = [
  { name: 'uri', type: 'STRING', mode: 'REQUIRED' },
  { name: 'generation', type: 'INTEGER', mode: 'REQUIRED' },
  { name: 'model_version', type: 'STRING', mode: 'REQUIRED' },
];
const RESULTS_SCHEMA: TableField[] = [
  ...KEY_FIELDS,
  { name: 'label', type: 'STRING' },
  { name: 'score', type: 'FLOAT' },
  {
    name: 'top_k', type: 'RECORD', mode: 'REPEATED',
    fields: [{ name: 'label', type: 'STRING' }, { name: 'index', type: 'INTEGER' }, { name: 'score', type: 'FLOAT' }],
  },
  { name: 'probabilities', type: 'FLOAT', mode: 'REPEATED' },
  { name: 'run_id', type: 'STRING', mode: 'REQUIRED' },
  { name: 'predicted_at', type: 'TIMESTAMP', mode: 'REQUIRED' },
];
const ERRORS_SCHEMA: TableField[] = [
  ...KEY_FIELDS,
  { name: 'error', type: 'STRING', mode: 'REQUIRED' },
  { name: 'run_id', type: 'STRING', mode: 'REQUIRED' },
  { name: 'failed_at', type: 'TIMESTAMP', mode: 'REQUIRED' },
];
const LABELS_SCHEMA: TableField[] = [
  { name: 'model_version', type: 'STRING', mode: 'REQUIRED' },
  { name: 'index', type: 'INTEGER', mode: 'REQUIRED' },
  { name: 'label', type: 'STRING', mode: 'REQUIRED' },
];
const CREATED_SCHEMA: TableField[] = [
  { name: 'kind', type: 'STRING', mode: 'REQUIRED' },
  { name: 'name', type: 'STRING', mode: 'REQUIRED' },
  { name: 'created_at', type: 'TIMESTAMP', mode: 'REQUIRED' },
];

type CreatedKind = 'dataset' | 'connection' | 'bucket' | 'grant' | 'object' | 'table' | 'model' | 'reservation';

function httpCode(error: unknown): number | undefined {
  const code = (error as { code?: number | string })?.code;
  if (code === 5 || code === 'NOT_FOUND') return 404; // gax NOT_FOUND
  if (code === 6 || code === 'ALREADY_EXISTS') return 409;
  return typeof code === 'number' ? code : undefined;
}

function bucketOf(uri: string): string {
  return uri.replace(/^gs:\/\//, '').split('/')[0]!;
}

export class GcpBackend implements Backend {
  private readonly clients: GcpClients;
  private labelsCache?: Promise<string[]>;

  constructor(
    private readonly config: PipelineConfig,
    endpoints?: GcpEndpoints,
  ) {
    this.clients = createGcpClients(config, endpoints);
  }

  private get dataset() {
    return this.clients.bigquery.dataset(this.config.dataset);
  }

  private get connectionName(): string {
    const { project, location, connection } = this.config;
    return `projects/${project}/locations/${location.toLowerCase()}/connections/${connection}`;
  }

  /** Runs a Google call and turns its failure into a classified ObjinferError. */
  private async call<T>(doing: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (error instanceof ObjinferError) throw error;
      const code = httpCode(error);
      throw classifyGoogleError({ code, message: (error as Error).message }, doing);
    }
  }

  private async record(kind: CreatedKind, name: string): Promise<void> {
    await this.call('record what objinfer created', async () => {
      const table = this.dataset.table(CREATED_TABLE);
      const [exists] = await table.exists();
      if (!exists) await this.dataset.createTable(CREATED_TABLE, { schema: CREATED_SCHEMA }).catch((e: unknown) => {
        if (httpCode(e) !== 409) throw e;
      });
      await table.insert([{ insertId: `${kind}:${name}`, json: { kind, name, created_at: new Date().toISOString() } }], { raw: true });
    });
  }

  private async created(): Promise<{ kind: CreatedKind; name: string }[]> {
    const table = this.dataset.table(CREATED_TABLE);
    const [exists] = await table.exists();
    if (!exists) return [];
    const [rows] = await table.getRows();
    const seen = new Map<string, { kind: CreatedKind; name: string }>();
    for (const row of rows as { kind: CreatedKind; name: string }[]) seen.set(`${row.kind}:${row.name}`, { kind: row.kind, name: row.name });
    return [...seen.values()];
  }

  async preflight(): Promise<PreflightReport> {
    const { projects, reservations } = this.clients;
    const [response] = await this.call('check permissions', () =>
      projects.testIamPermissions({ resource: `projects/${this.config.project}`, permissions: REQUIRED_PERMISSIONS }),
    );
    const granted = new Set(response.permissions ?? []);
    const missing = REQUIRED_PERMISSIONS.filter((p) => !granted.has(p));
    if (missing.length > 0) {
      throw new ObjinferError(
        ErrorType.PermissionDenied,
        `you lack ${missing.length} permission(s) on project ${this.config.project}: ${missing.join(', ')}. ` +
          'Grant them (e.g. roles/bigquery.admin and roles/storage.admin) and run again; nothing was changed',
      );
    }
    const warnings: string[] = [];
    if (!this.config.reservation) {
      const [assignments] = await this.call('look for a reservation assignment', () =>
        reservations.searchAllAssignments({
          parent: `projects/${this.config.project}/locations/${this.config.location}`,
          query: `assignee=projects/${this.config.project}`,
        }, { autoPaginate: false }),
      );
      if (assignments.length === 0) {
        warnings.push(
          `project ${this.config.project} has no reservation assignment in ${this.config.location}: ML.PREDICT on imported models over object tables needs an Enterprise reservation (set "reservation" in the config to let objinfer create one)`,
        );
      }
    }
    return { warnings };
  }

  async ensureDataset(): Promise<StepOutcome> {
    const { dataset, location } = this.config;
    return this.call(`dataset ${dataset}`, async () => {
      const [exists] = await this.dataset.exists();
      if (exists) {
        const [metadata] = await this.dataset.getMetadata();
        const actual = String(metadata.location ?? '');
        if (actual.toLowerCase() !== location.toLowerCase()) {
          throw new ObjinferError(ErrorType.ResourceConflict, `dataset ${dataset} exists in location ${actual}, not ${location}; set location: ${actual} or choose another dataset`);
        }
        return { step: 'dataset', action: 'exists', detail: `${this.config.project}.${dataset} (${actual})` } as StepOutcome;
      }
      await this.clients.bigquery.createDataset(dataset, { location });
      await this.record('dataset', dataset);
      return { step: 'dataset', action: 'created', detail: `${this.config.project}.${dataset} (${location})` } as StepOutcome;
    });
  }

  /** When configured: an Enterprise reservation and a QUERY assignment of the project to it. */
  async ensureReservation(): Promise<StepOutcome[]> {
    const wanted = this.config.reservation;
    if (!wanted) return [];
    const { reservations } = this.clients;
    const parent = `projects/${this.config.project}/locations/${this.config.location}`;
    const name = `${parent}/reservations/${wanted.name}`;
    const outcomes: StepOutcome[] = [];
    await this.call(`reservation ${wanted.name}`, async () => {
      try {
        await reservations.getReservation({ name });
        outcomes.push({ step: 'reservation', action: 'exists', detail: name });
      } catch (error) {
        if (httpCode(error) !== 404) throw error;
        await reservations.createReservation({
          parent,
          reservationId: wanted.name,
          reservation: { slotCapacity: wanted.slots, edition: wanted.edition, ignoreIdleSlots: false },
        });
        await this.record('reservation', name);
        outcomes.push({ step: 'reservation', action: 'created', detail: `${name} (${wanted.edition}, ${wanted.slots} slots)` });
      }
      const assignee = `projects/${this.config.project}`;
      const [assignments] = await reservations.listAssignments({ parent: name }, { autoPaginate: false });
      if (assignments.some((a) => a.assignee === assignee && String(a.jobType) === 'QUERY')) {
        outcomes.push({ step: 'assignment', action: 'exists', detail: `${assignee} QUERY -> ${wanted.name}` });
        return;
      }
      await reservations.createAssignment({ parent: name, assignment: { assignee, jobType: 'QUERY' } });
      outcomes.push({ step: 'assignment', action: 'created', detail: `${assignee} QUERY -> ${wanted.name}` });
    });
    return outcomes;
  }

  async ensureConnection(): Promise<ConnectionInfo> {
    const { connections } = this.clients;
    return this.call(`connection ${this.config.connection}`, async () => {
      let action: StepOutcome['action'] = 'exists';
      let connection;
      try {
        [connection] = await connections.getConnection({ name: this.connectionName });
      } catch (error) {
        if (httpCode(error) !== 404) throw error;
        [connection] = await connections.createConnection({
          parent: this.connectionName.replace(/\/connections\/[^/]+$/, ''),
          connectionId: this.config.connection,
          connection: { friendlyName: this.config.connection, description: 'created by objinfer', cloudResource: {} },
        });
        action = 'created';
        await this.record('connection', this.connectionName);
      }
      const serviceAccount = connection.cloudResource?.serviceAccountId;
      if (!serviceAccount) {
        throw new ObjinferError(ErrorType.ResourceConflict, `connection ${this.connectionName} is not a Cloud resource connection (it has no service account); choose another connection name`);
      }
      return { step: 'connection', action, detail: `${this.connectionName} (service account ${serviceAccount})`, serviceAccount };
    });
  }

  /** Whether the caller may change the bucket's IAM policy: "the user owns it". */
  private async owns(bucket: string): Promise<boolean> {
    const [allowed] = await this.clients.storage.bucket(bucket).iam.testPermissions(['storage.buckets.getIamPolicy', 'storage.buckets.setIamPolicy']);
    return Object.values(allowed).every(Boolean);
  }

  async ensureBucket(): Promise<StepOutcome> {
    const { bucket, location } = this.config;
    return this.call(`bucket ${bucket}`, async () => {
      const handle = this.clients.storage.bucket(bucket);
      const [exists] = await handle.exists();
      if (exists) {
        const [allowed] = await handle.iam.testPermissions(['storage.objects.create', 'storage.objects.get']);
        if (!Object.values(allowed).every(Boolean)) {
          throw new ObjinferError(ErrorType.ResourceConflict, `bucket ${bucket} exists but you cannot write to it (bucket names are global: it may belong to someone else); choose another bucket name`);
        }
        return { step: 'bucket', action: 'exists', detail: `gs://${bucket}` } as StepOutcome;
      }
      try {
        await this.clients.storage.createBucket(bucket, { location });
      } catch (error) {
        if (httpCode(error) === 409) {
          throw new ObjinferError(ErrorType.ResourceConflict, `bucket ${bucket} belongs to another project; choose another bucket name`);
        }
        throw error;
      }
      await this.record('bucket', bucket);
      return { step: 'bucket', action: 'created', detail: `gs://${bucket}` } as StepOutcome;
    });
  }

  /**
   * roles/storage.objectViewer for the connection's service account on the model bucket and
   * on the image buckets the user owns: read-modify-write with the policy's etag, retried
   * when someone else changed it meanwhile; no duplicate binding; nothing else touched.
   */
  async grantObjectViewer(serviceAccount: string): Promise<StepOutcome[]> {
    const member = `serviceAccount:${serviceAccount}`;
    const buckets = [...new Set([this.config.bucket, ...this.config.sourceUris.map(bucketOf)])];
    const outcomes: StepOutcome[] = [];
    for (const bucket of buckets) {
      outcomes.push(await this.call(`grant on gs://${bucket}`, async () => {
        const detail = `${OBJECT_VIEWER} for ${member} on gs://${bucket}`;
        if (!(await this.owns(bucket))) {
          return { step: 'grant', action: 'skipped', detail: `${detail}: not yours to change (e.g. public sample data); its objects must already be readable` } as StepOutcome;
        }
        const added = await this.addBinding(bucket, member);
        if (added) await this.record('grant', `${bucket} ${member}`);
        return { step: 'grant', action: added ? 'created' : 'exists', detail } as StepOutcome;
      }));
    }
    return outcomes;
  }

  private async addBinding(bucket: string, member: string): Promise<boolean> {
    const iam = this.clients.storage.bucket(bucket).iam;
    for (let attempt = 1; ; attempt++) {
      const [policy] = await iam.getPolicy({ requestedPolicyVersion: 3 });
      const bindings = policy.bindings ?? [];
      const binding = bindings.find((b) => b.role === OBJECT_VIEWER && !b.condition);
      if (binding?.members?.includes(member)) return false;
      if (binding) binding.members = [...(binding.members ?? []), member];
      else bindings.push({ role: OBJECT_VIEWER, members: [member] });
      try {
        await iam.setPolicy({ ...policy, bindings });
        return true;
      } catch (error) {
        if (httpCode(error) !== 412 || attempt >= 5) throw error; // 412: changed since we read it
      }
    }
  }

  private async removeBinding(bucket: string, member: string): Promise<boolean> {
    const iam = this.clients.storage.bucket(bucket).iam;
    for (let attempt = 1; ; attempt++) {
      const [policy] = await iam.getPolicy({ requestedPolicyVersion: 3 });
      const binding = (policy.bindings ?? []).find((b) => b.role === OBJECT_VIEWER && !b.condition && b.members?.includes(member));
      if (!binding) return false;
      binding.members = binding.members!.filter((m) => m !== member);
      const bindings = (policy.bindings ?? []).filter((b) => (b.members ?? []).length > 0);
      try {
        await iam.setPolicy({ ...policy, bindings });
        return true;
      } catch (error) {
        if (httpCode(error) !== 412 || attempt >= 5) throw error;
      }
    }
  }

  /** The model's files (an ONNX file, or a SavedModel folder), relative name -> local path. */
  private async modelFiles(): Promise<{ name: string; path: string }[]> {
    const source = this.config.model.source;
    const info = await stat(source);
    if (!info.isDirectory()) return [{ name: this.config.model.type === 'ONNX' ? 'model.onnx' : relative(join(source, '..'), source), path: source }];
    const files: { name: string; path: string }[] = [];
    const walk = async (dir: string) => {
      for (const entry of (await readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) await walk(path);
        else files.push({ name: relative(source, path), path });
      }
    };
    await walk(source);
    return files;
  }

  async uploadModel(): Promise<ModelArtifact> {
    const { model, bucket } = this.config;
    if (model.source.startsWith('gs://')) return this.modelInPlace();
    return this.call(`upload model ${model.name}`, async () => {
      const files = await this.modelFiles();
      const hash = createHash('sha256');
      const contents = new Map<string, Buffer>();
      for (const file of files) {
        const bytes = await readFile(file.path);
        contents.set(file.name, bytes);
        hash.update(file.name).update(bytes);
      }
      if (model.labels && !model.labels.startsWith('gs://')) hash.update('labels').update(await readFile(model.labels));
      const version = hash.digest('hex').slice(0, 12);
      const prefix = `models/${model.name}/${version}/`;
      let uploaded = 0;
      for (const file of files) {
        const object = this.clients.storage.bucket(bucket).file(prefix + file.name);
        const bytes = contents.get(file.name)!;
        const md5 = createHash('md5').update(bytes).digest('base64');
        const [exists] = await object.exists();
        if (exists) {
          const [metadata] = await object.getMetadata();
          if (metadata.md5Hash === md5) continue;
        }
        await object.save(bytes, { resumable: false, validation: 'md5' });
        await this.record('object', `${bucket}/${prefix}${file.name}`);
        uploaded++;
      }
      const base = `gs://${bucket}/${prefix}`;
      return {
        step: 'upload model',
        action: uploaded > 0 ? 'created' : 'exists',
        detail: `${files.length} file(s) -> ${base} (version ${version}, ${uploaded} uploaded)`,
        version,
        uri: model.type === 'ONNX' ? `${base}model.onnx` : `${base}*`,
        filesUploaded: uploaded,
        filesSkipped: files.length - uploaded,
      };
    });
  }

  /** A model already in Cloud Storage: used in place, versioned by its objects' MD5s. */
  private async modelInPlace(): Promise<ModelArtifact> {
    const { model } = this.config;
    return this.call(`model ${model.source}`, async () => {
      const [bucket, ...rest] = model.source.replace(/^gs:\/\//, '').split('/');
      const prefix = rest.join('/');
      const [objects] = await this.clients.storage.bucket(bucket!).getFiles({ prefix });
      if (objects.length === 0) throw new ObjinferError(ErrorType.NotFound, `model.source: nothing at ${model.source}`);
      const hash = createHash('sha256');
      for (const object of objects) hash.update(object.name).update(String(object.metadata.md5Hash ?? ''));
      const uri = model.type === 'ONNX' || !prefix.endsWith('/') ? model.source : `${model.source}*`;
      return { step: 'upload model', action: 'skipped', detail: `used in place: ${model.source}`, version: hash.digest('hex').slice(0, 12), uri, filesUploaded: 0, filesSkipped: objects.length };
    });
  }

  private query(jobId: string, query: string, params: Record<string, unknown> = {}, types?: Record<string, string | string[]>) {
    return runJob(this.clients.bigquery, this.config.location, { jobId, query, params, types });
  }

  /**
   * A job ID for a provisioning or counting statement. These are idempotent (CREATE OR
   * REPLACE, SELECT), so a retry may run them again; the time keeps a later run from
   * attaching to an earlier run's finished job. Batch jobs use batchJobId instead.
   */
  private statementJobId(kind: string, sql: string): string {
    const digest = createHash('sha256').update(sql).digest('hex').slice(0, 12);
    return `objinfer_${kind}_${digest}_${Date.now().toString(36)}`;
  }

  /** Runs a statement and turns a failed job into a classified error. */
  private async statement(doing: string, kind: string, sql: string, params: Record<string, unknown> = {}, types?: Record<string, string | string[]>) {
    return this.call(doing, async () => {
      const outcome = await this.query(this.statementJobId(kind, sql), sql, params, types);
      if (outcome.error) throw classifyGoogleError({ code: outcome.error.reason === 'accessDenied' ? 403 : 400, message: outcome.error.message }, doing);
      return outcome;
    });
  }

  /** Recreated only when its URIs or connection changed; then probed through the connection. */
  async ensureObjectTable(): Promise<StepOutcome> {
    const { objectTable, sourceUris } = this.config;
    const table = this.dataset.table(objectTable);
    const action = await this.call(`object table ${objectTable}`, async (): Promise<StepOutcome['action']> => {
      const [exists] = await table.exists();
      if (exists) {
        const [metadata] = await table.getMetadata();
        const external = metadata.externalDataConfiguration ?? {};
        const sameUris = JSON.stringify(external.sourceUris ?? []) === JSON.stringify(sourceUris);
        const sameConnection = String(external.connectionId ?? '').endsWith(`.${this.config.connection}`);
        if (sameUris && sameConnection) return 'exists';
      }
      await this.statement(`object table ${objectTable}`, 'object_table', createObjectTableSql(this.config));
      if (!exists) await this.record('table', objectTable);
      return exists ? 'updated' : 'created';
    });
    // Listing the objects reads through the connection: this is where a fresh grant shows.
    await this.statement(`read object table ${objectTable}`, 'probe', probeObjectTableSql(this.config));
    return { step: 'object table', action, detail: `${this.config.dataset}.${objectTable} over ${sourceUris.join(', ')}` };
  }

  async ensureModel(artifact: ModelArtifact): Promise<StepOutcome> {
    const { model } = this.config;
    const handle = this.dataset.model(model.name);
    return this.call(`model ${model.name}`, async () => {
      const [exists] = await handle.exists();
      let previous: string | undefined;
      if (exists) {
        const [metadata] = await handle.getMetadata();
        previous = metadata.labels?.objinfer_version;
        if (previous === artifact.version) return { step: 'model', action: 'exists', detail: `${model.name} (version ${artifact.version})` } as StepOutcome;
      }
      await this.statement(`model ${model.name}`, 'model', createModelSql(this.config, artifact.uri, artifact.version));
      if (!exists) await this.record('model', model.name);
      return {
        step: 'model',
        action: exists ? 'updated' : 'created',
        detail: `${model.name} model_type=${model.type} model_path=${artifact.uri}${previous ? ` (was version ${previous})` : ''}`,
      } as StepOutcome;
    });
  }

  /** Feature and label column names from the models API; the image size from the config. */
  async describeModel(artifact: ModelArtifact): Promise<ModelDescription> {
    const { model } = this.config;
    const [metadata] = await this.call(`describe model ${model.name}`, () => this.dataset.model(model.name).getMetadata());
    const inputName = metadata.featureColumns?.[0]?.name;
    const outputName = metadata.labelColumns?.[0]?.name;
    if (!inputName || !outputName) {
      throw new ObjinferError(ErrorType.ModelShapeMismatch, `model ${model.name} has no feature or label columns (features: ${JSON.stringify(metadata.featureColumns ?? [])}); is it an image classifier?`);
    }
    if (!model.inputSize) {
      throw new ObjinferError(ErrorType.InvalidConfig, `model.inputSize: BigQuery does not report an imported model's image size; set it (224 for the tutorial's ResNet-50)`);
    }
    const labels = await this.labels();
    return { version: artifact.version, inputName, outputName, inputSize: model.inputSize, classCount: labels.length, labelsUri: model.labels, modelUri: artifact.uri };
  }

  private labels(): Promise<string[]> {
    this.labelsCache ??= (async () => {
      const source = this.config.model.labels;
      if (!source) return [];
      let text: string;
      if (source.startsWith('gs://')) {
        const [bucket, ...path] = source.replace(/^gs:\/\//, '').split('/');
        const [bytes] = await this.clients.storage.bucket(bucket!).file(path.join('/')).download();
        text = bytes.toString('utf8');
      } else {
        text = await readFile(source, 'utf8');
      }
      return text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
    })();
    return this.labelsCache;
  }

  async ensureResultTables(model: ModelDescription): Promise<StepOutcome[]> {
    const { results } = this.config;
    const labelsTable = `${this.config.model.name}_labels`;
    const outcomes: StepOutcome[] = [];
    for (const [name, schema] of [
      [results.table, RESULTS_SCHEMA],
      [results.errorsTable, ERRORS_SCHEMA],
      [labelsTable, LABELS_SCHEMA],
    ] as const) {
      outcomes.push(await this.call(`table ${name}`, async () => {
        const [exists] = await this.dataset.table(name).exists();
        if (exists) return { step: 'table', action: 'exists', detail: `${this.config.dataset}.${name}` } as StepOutcome;
        await this.dataset.createTable(name, { schema: [...schema] });
        await this.record('table', name);
        return { step: 'table', action: 'created', detail: `${this.config.dataset}.${name}` } as StepOutcome;
      }));
    }
    await this.call('load labels', async () => {
      const table = this.dataset.table(labelsTable);
      const [rows] = await table.getRows();
      if ((rows as { model_version: string }[]).some((r) => r.model_version === model.version)) return;
      const labels = await this.labels();
      if (labels.length === 0) return;
      await table.insert(
        labels.map((label, index) => ({ insertId: `${model.version}:${index}`, json: { model_version: model.version, index, label } })),
        { raw: true },
      );
    });
    return outcomes;
  }

  async planBatches(modelVersion: string): Promise<BatchPlan> {
    const outcome = await this.statement('plan', 'plan', planSql(this.config), { model_version: modelVersion });
    const [rows] = await outcome.job.getQueryResults();
    const row = (rows as { objects_seen: number | string; already_done: number | string }[])[0];
    const objectsSeen = Number(row?.objects_seen ?? 0);
    const alreadyDone = Number(row?.already_done ?? 0);
    const pending = objectsSeen - alreadyDone;
    return { modelVersion, objectsSeen, alreadyDone, pending, batchCount: Math.ceil(pending / this.config.batch.size) };
  }

  /**
   * One ML.PREDICT job per batch. A decode error fails the whole query, so the batch is
   * split by a second hash until each bad object stands alone and goes to the errors table.
   */
  async predictBatch(request: BatchRequest, onProgress?: (progress: BatchProgress) => void, signal?: AbortSignal): Promise<BatchResult> {
    const slice: BatchSlice = { count: request.batchCount, index: request.batchIndex };
    await this.predictSlice(request, slice, signal, onProgress);
    return this.countBatch(request);
  }

  private async predictSlice(request: BatchRequest, slice: BatchSlice, signal?: AbortSignal, onProgress?: (progress: BatchProgress) => void): Promise<void> {
    const labels = await this.labels();
    const params = { model_version: request.modelVersion, run_id: request.runId, labels };
    const types = { model_version: 'STRING', run_id: 'STRING', labels: ['STRING'] };
    const sql = predictBatchSql(this.config, request.model, slice);
    for (let attempt = 1; attempt <= MAX_JOB_ATTEMPTS; attempt++) {
      const jobId = batchJobId(request.runId, slice, attempt);
      const outcome = await this.call(`batch ${slice.index + 1}/${slice.count}`, () =>
        runJob(this.clients.bigquery, this.config.location, { jobId, query: sql, params, types }, { signal, onPoll: () => onProgress?.({ jobId }) }),
      );
      if (!outcome.error) return;
      if (isDecodeError(outcome.error)) return this.isolateBadObjects(request, slice, outcome.error.message, signal, onProgress);
      if (!TRANSIENT_JOB_REASONS.has(outcome.error.reason ?? '')) {
        throw classifyGoogleError({ code: outcome.error.reason === 'accessDenied' ? 403 : 400, message: outcome.error.message }, `batch ${slice.index + 1}/${slice.count}`);
      }
    }
    throw new ObjinferError(ErrorType.WarehouseBusy, `batch ${slice.index + 1}/${slice.count}: ${MAX_JOB_ATTEMPTS} jobs failed with transient errors`);
  }

  private async isolateBadObjects(request: BatchRequest, slice: BatchSlice, error: string, signal?: AbortSignal, onProgress?: (progress: BatchProgress) => void): Promise<void> {
    const params = { model_version: request.modelVersion };
    const count = await this.statement('count a failing batch', `count_${batchJobId(request.runId, slice, 0)}`, countSliceSql(this.config, slice), params);
    const [rows] = await count.job.getQueryResults();
    const pending = Number((rows as { pending: number | string }[])[0]?.pending ?? 0);
    const depth = slice.split?.length ?? 0;
    if (pending <= 1 || depth >= MAX_SPLIT_DEPTH) {
      await this.statement('record undecodable objects', `fail_${batchJobId(request.runId, slice, 0)}`, recordFailuresSql(this.config, slice), {
        ...params, run_id: request.runId, error,
      });
      return;
    }
    for (const bit of [0, 1]) {
      await this.predictSlice(request, { ...slice, split: [...(slice.split ?? []), bit] }, signal, onProgress);
    }
  }

  /** Counts from the tables, so a retried batch reports what its run wrote. */
  private async countBatch(request: BatchRequest): Promise<BatchResult> {
    const { results } = this.config;
    const where = `WHERE r.model_version = @model_version AND r.run_id = @run_id AND MOD(ABS(FARM_FINGERPRINT(r.uri)), ${request.batchCount}) = ${request.batchIndex}`;
    const sql = [
      `SELECT 'label' AS kind, label, COUNT(*) AS n FROM \`${this.config.project}.${this.config.dataset}.${results.table}\` AS r ${where} GROUP BY label`,
      'UNION ALL',
      `SELECT 'failed' AS kind, '' AS label, COUNT(*) AS n FROM \`${this.config.project}.${this.config.dataset}.${results.errorsTable}\` AS r ${where}`,
    ].join('\n');
    const outcome = await this.statement('count a batch', `count_${batchJobId(request.runId, { count: request.batchCount, index: request.batchIndex }, 0)}`, sql, {
      model_version: request.modelVersion, run_id: request.runId,
    });
    const [rows] = await outcome.job.getQueryResults();
    const labelCounts: Record<string, number> = {};
    let failed = 0;
    for (const row of rows as { kind: string; label: string; n: number | string }[]) {
      if (row.kind === 'failed') failed += Number(row.n);
      else labelCounts[row.label] = Number(row.n);
    }
    return { batchIndex: request.batchIndex, predicted: Object.values(labelCounts).reduce((a, b) => a + b, 0), failed, labelCounts };
  }

  async readResults(limit: number): Promise<ResultRow[]> {
    const [rows] = await this.call('read results', () => this.dataset.table(this.config.results.table).getRows({ maxResults: limit }));
    return (rows as Record<string, unknown>[]).map((r) => ({
      uri: String(r.uri), generation: String(r.generation), modelVersion: String(r.model_version), label: String(r.label), score: Number(r.score),
      topK: ((r.top_k as { label: string; index: number; score: number }[]) ?? []).map((t) => ({ label: t.label, index: Number(t.index), score: Number(t.score) })),
      runId: String(r.run_id), predictedAt: String((r.predicted_at as { value?: string })?.value ?? r.predicted_at),
    }));
  }

  async readErrors(limit: number): Promise<ErrorRow[]> {
    const [rows] = await this.call('read errors', () => this.dataset.table(this.config.results.errorsTable).getRows({ maxResults: limit }));
    return (rows as Record<string, unknown>[]).map((r) => ({
      uri: String(r.uri), generation: String(r.generation), modelVersion: String(r.model_version), error: String(r.error),
      runId: String(r.run_id), failedAt: String((r.failed_at as { value?: string })?.value ?? r.failed_at),
    }));
  }

  async describePlan(): Promise<PlannedCall[]> {
    const { project, dataset, location, bucket, model } = this.config;
    const calls: PlannedCall[] = [
      { step: 'preflight', call: `POST cloudresourcemanager projects/${project}:testIamPermissions (${REQUIRED_PERMISSIONS.length} permissions)` },
      { step: 'dataset', call: `GET, then if missing POST bigquery datasets ${project}.${dataset} (location ${location})` },
      { step: 'connection', call: `GET, then if missing POST bigqueryconnection ${this.connectionName} (Cloud resource)` },
      { step: 'bucket', call: `GET, then if missing POST storage buckets gs://${bucket}` },
      { step: 'grant', call: `GET + PUT storage buckets/*/iam: ${OBJECT_VIEWER} for the connection's service account` },
      { step: 'upload model', call: `PUT gs://${bucket}/models/${model.name}/VERSION/... (files whose MD5 differs)` },
      { step: 'object table', call: createObjectTableSql(this.config) },
      { step: 'model', call: createModelSql(this.config, `gs://${bucket}/models/${model.name}/VERSION/${model.type === 'ONNX' ? 'model.onnx' : '*'}`, 'VERSION') },
      { step: 'describe model', call: `GET bigquery models ${project}.${dataset}.${model.name}` },
      { step: 'tables', call: `POST bigquery tables (if missing): ${this.config.results.table}, ${this.config.results.errorsTable}, ${model.name}_labels` },
      { step: 'plan', call: planSql(this.config) },
      { step: 'infer', call: predictBatchSql(this.config, { inputName: 'FEATURE', outputName: 'LABEL', inputSize: model.inputSize ?? [224, 224] }, { count: 1, index: 0 }) + '\n-- one job per batch: k = ceil(pending / batch.size), batch i of k' },
    ];
    for (const call of calls) {
      if (!/^(SELECT|INSERT|CREATE)/.test(call.call)) continue;
      call.estimatedBytes = await this.dryRunBytes(call.call).catch(() => undefined);
    }
    return calls;
  }

  private async dryRunBytes(sql: string): Promise<number | undefined> {
    const [job] = await this.clients.bigquery.createQueryJob({ query: sql, dryRun: true, location: this.config.location, params: { model_version: '', run_id: '', labels: [] }, types: { labels: ['STRING'] } });
    const bytes = (job.metadata as { statistics?: { totalBytesProcessed?: string } }).statistics?.totalBytesProcessed;
    return bytes === undefined ? undefined : Number(bytes);
  }

  async cleanup(options: { deleteData: boolean }): Promise<StepOutcome[]> {
    const created = await this.call('read what objinfer created', () => this.created());
    const mine = (kind: CreatedKind) => created.filter((c) => c.kind === kind).map((c) => c.name);
    const outcomes: StepOutcome[] = [];
    const remove = async (step: string, name: string, work: () => Promise<unknown>) => {
      await this.call(`remove ${step} ${name}`, async () => {
        try {
          await work();
          outcomes.push({ step, action: 'removed', detail: `removed ${name}` });
        } catch (error) {
          if (httpCode(error) !== 404) throw error;
          outcomes.push({ step, action: 'skipped', detail: `${name} was already gone` });
        }
      });
    };
    const dataTables = new Set([this.config.results.table, this.config.results.errorsTable]);
    for (const name of mine('model')) await remove('model', name, () => this.dataset.model(name).delete());
    for (const name of mine('table')) {
      if (dataTables.has(name) && !options.deleteData) {
        outcomes.push({ step: 'table', action: 'skipped', detail: `kept ${name} (data: pass --yes to delete it)` });
        continue;
      }
      await remove('table', name, () => this.dataset.table(name).delete());
    }
    for (const grant of mine('grant')) {
      const [bucket, member] = grant.split(' ');
      await remove('grant', grant, async () => {
        if (!(await this.removeBinding(bucket!, member!))) throw Object.assign(new Error('gone'), { code: 404 });
      });
    }
    for (const object of mine('object')) {
      const [bucket, ...path] = object.split('/');
      await remove('model file', `gs://${object}`, () => this.clients.storage.bucket(bucket!).file(path.join('/')).delete());
    }
    if (options.deleteData) {
      for (const name of mine('bucket')) await remove('bucket', name, () => this.clients.storage.bucket(name).delete());
      for (const name of mine('connection')) await remove('connection', name, () => this.clients.connections.deleteConnection({ name }));
      for (const name of mine('reservation')) await remove('reservation', name, () => this.clients.reservations.deleteReservation({ name }));
      for (const name of mine('dataset')) await remove('dataset', name, () => this.dataset.delete({ force: true }));
    } else {
      for (const kind of ['bucket', 'connection', 'reservation', 'dataset'] as const) {
        for (const name of mine(kind)) outcomes.push({ step: kind, action: 'skipped', detail: `kept ${name} (pass --yes to delete it)` });
      }
    }
    // The record goes last, and only when nothing it lists is left to remove later.
    if (options.deleteData && mine('dataset').length === 0) {
      await remove('table', CREATED_TABLE, () => this.dataset.table(CREATED_TABLE).delete());
    }
    return outcomes;
  }
}

export function createGcpBackend(config: PipelineConfig, endpoints?: GcpEndpoints): Backend {
  return new GcpBackend(config, endpoints);
}
