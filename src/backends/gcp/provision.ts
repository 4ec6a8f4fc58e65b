/**
 * Provisioning on Google Cloud: the tutorial's set-up steps with the official clients,
 * each idempotent (what exists and is right is left alone; what exists and is wrong is an
 * error naming it), each recorded in `_objinfer_created` when objinfer made it.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { TableField } from '@google-cloud/bigquery';
import { ErrorType, ObjinferError } from '../../errors';
import { savedModelFiles } from '../../models/savedModel';
import type { ConnectionInfo, ModelArtifact, ModelDescription, PreflightReport, StepOutcome } from '../../workflows/contract';
import { OBJECT_VIEWER } from '../common/iam';
import { chooseOutput, parseLabels, predictionVersion } from '../common/model';
import type { GcpContext } from './context';
import { describeGoogleError, isNotFound } from './errors';
import { createModelSql, loadLabelsSql } from './sql';

/** Project permissions the procedure needs (checked in one call, every missing one listed). */
export const PROJECT_PERMISSIONS = [
  'bigquery.datasets.create',
  'bigquery.datasets.get',
  'bigquery.connections.create',
  'bigquery.connections.get',
  'bigquery.connections.delegate',
  'bigquery.tables.create',
  'bigquery.tables.get',
  'bigquery.tables.update',
  'bigquery.tables.updateData',
  'bigquery.tables.getData',
  'bigquery.jobs.create',
  'bigquery.models.create',
  'bigquery.models.getData',
  'bigquery.models.updateData',
  'bigquery.models.updateMetadata',
];

/** Storage permissions: granted on the project, or on the model bucket when it exists (bucket-level roles). */
export const STORAGE_PERMISSIONS = [
  'storage.buckets.create',
  'storage.buckets.getIamPolicy',
  'storage.buckets.setIamPolicy',
  'storage.objects.create',
  'storage.objects.get',
  'storage.objects.list',
];

/** Needed only when the config asks objinfer to make a reservation. */
export const RESERVATION_PERMISSIONS = [
  'bigquery.reservations.create',
  'bigquery.reservations.get',
  'bigquery.reservationAssignments.create',
  'bigquery.reservationAssignments.search',
];

export function bucketOf(uri: string): string {
  return uri.replace(/^gs:\/\//, '').split('/')[0]!;
}

export async function preflight(ctx: GcpContext): Promise<PreflightReport> {
  const { spec } = ctx;
  const { projects, storage } = ctx.clients;
  const asked = [...PROJECT_PERMISSIONS, ...STORAGE_PERMISSIONS, ...(spec.reservation ? RESERVATION_PERMISSIONS : [])];
  const [response] = await ctx.call('check your permissions (Resource Manager testIamPermissions)', () =>
    projects.testIamPermissions({ resource: `projects/${spec.project}`, permissions: asked }),
  );
  const granted = new Set(response.permissions ?? []);
  let missing = asked.filter((p) => !granted.has(p));
  const storageMissing = missing.filter((p) => p.startsWith('storage.') && p !== 'storage.buckets.create');
  if (storageMissing.length > 0) {
    // Bucket-level roles do not show on the project: ask the bucket itself, when it is there.
    const bucket = storage.bucket(spec.bucket);
    const [exists] = await ctx.call(`bucket ${spec.bucket}`, () => bucket.exists());
    if (exists) {
      const [onBucket] = await ctx.call(`check your permissions on gs://${spec.bucket}`, () => bucket.iam.testPermissions(storageMissing));
      missing = missing.filter((p) => p === 'storage.buckets.create' || !onBucket[p]);
      missing = missing.filter((p) => p !== 'storage.buckets.create'); // the bucket exists: nothing to create
    }
  }
  if (missing.length > 0) {
    throw new ObjinferError(
      ErrorType.PermissionDenied,
      `you lack ${missing.length} permission(s) on project ${spec.project}: ${missing.join(', ')}. ` +
        'Grant them (e.g. roles/bigquery.admin and roles/storage.admin, or roles/storage.admin on the bucket) and run again; nothing was changed',
    );
  }
  const warnings: string[] = [];
  if (!spec.reservation) {
    const assignments = await queryAssignments(ctx);
    if (assignments.length === 0) {
      warnings.push(
        `project ${spec.project} has no QUERY reservation assignment in ${spec.location}: ML.PREDICT on imported models over object tables needs an Enterprise reservation (set "reservation" in the config to let objinfer create one)`,
      );
    }
  }
  return { warnings };
}

/** The project's QUERY assignments in the location (there can be one per project and location). */
async function queryAssignments(ctx: GcpContext): Promise<{ name: string; reservation: string }[]> {
  const { project, location } = ctx.spec;
  const [found] = await ctx.call('look for a reservation assignment', () =>
    ctx.clients.reservations.searchAllAssignments(
      { parent: `projects/${project}/locations/${location}`, query: `assignee=projects/${project}` },
      { autoPaginate: false },
    ),
  );
  return found
    .filter((a) => String(a.jobType) === 'QUERY' && a.assignee === `projects/${project}`)
    .map((a) => ({ name: String(a.name), reservation: String(a.name).replace(/\/assignments\/[^/]+$/, '') }));
}

export async function ensureDataset(ctx: GcpContext): Promise<StepOutcome> {
  const { dataset, location, project } = ctx.spec;
  return ctx.call(`dataset ${dataset}`, async () => {
    const [exists] = await ctx.dataset.exists();
    if (exists) {
      const [metadata] = await ctx.dataset.getMetadata();
      const actual = String(metadata.location ?? '');
      if (actual.toLowerCase() !== location.toLowerCase()) {
        throw new ObjinferError(
          ErrorType.ResourceConflict,
          `dataset ${dataset} exists in location ${actual}, not ${location}; set location: ${actual} or choose another dataset`,
        );
      }
      return { step: 'dataset', action: 'exists', detail: `${project}.${dataset} (${actual})` };
    }
    await ctx.clients.bigquery.createDataset(dataset, { location });
    await ctx.record('dataset', dataset);
    return { step: 'dataset', action: 'created', detail: `${project}.${dataset} (${location})` };
  });
}

/** When configured: an Enterprise reservation and the project's QUERY assignment to it. */
export async function ensureReservation(ctx: GcpContext): Promise<StepOutcome[]> {
  const wanted = ctx.spec.reservation;
  if (!wanted) return [];
  const { project, location } = ctx.spec;
  const { reservations } = ctx.clients;
  const parent = `projects/${project}/locations/${location}`;
  const name = `${parent}/reservations/${wanted.name}`;
  const outcomes: StepOutcome[] = [];
  await ctx.call(`reservation ${wanted.name}`, async () => {
    try {
      await reservations.getReservation({ name });
      outcomes.push({ step: 'reservation', action: 'exists', detail: name });
    } catch (error) {
      if (!isNotFound(error)) throw error;
      await reservations.createReservation({
        parent,
        reservationId: wanted.name,
        reservation: { slotCapacity: wanted.slots, edition: wanted.edition, ignoreIdleSlots: false },
      });
      await ctx.record('reservation', name);
      outcomes.push({ step: 'reservation', action: 'created', detail: `${name} (${wanted.edition}, ${wanted.slots} slots)` });
    }
  });
  const assignee = `projects/${project}`;
  const existing = await queryAssignments(ctx);
  const ours = existing.find((a) => a.reservation === name);
  if (ours) {
    outcomes.push({ step: 'assignment', action: 'exists', detail: `${assignee} QUERY -> ${wanted.name}` });
    return outcomes;
  }
  if (existing.length > 0) {
    throw new ObjinferError(
      ErrorType.ResourceConflict,
      `project ${project} already has a QUERY assignment in ${location}, to ${existing[0]!.reservation}; a project may have one. ` +
        `Use that reservation (set reservation.name to ${existing[0]!.reservation.split('/').pop()}) or remove "reservation" from the config`,
    );
  }
  await ctx.call(`assignment of ${assignee} to ${wanted.name}`, async () => {
    const [assignment] = await reservations.createAssignment({ parent: name, assignment: { assignee, jobType: 'QUERY' } });
    await ctx.record('assignment', String(assignment.name));
  });
  outcomes.push({ step: 'assignment', action: 'created', detail: `${assignee} QUERY -> ${wanted.name}` });
  return outcomes;
}

export async function ensureConnection(ctx: GcpContext): Promise<ConnectionInfo> {
  const { connections } = ctx.clients;
  const { connection: id } = ctx.spec;
  return ctx.call(`connection ${id}`, async () => {
    let action: StepOutcome['action'] = 'exists';
    let connection;
    try {
      [connection] = await connections.getConnection({ name: ctx.connectionName });
    } catch (error) {
      if (!isNotFound(error)) throw error;
      [connection] = await connections.createConnection({
        parent: ctx.connectionName.replace(/\/connections\/[^/]+$/, ''),
        connectionId: id,
        connection: { friendlyName: id, description: 'created by objinfer', cloudResource: {} },
      });
      action = 'created';
      await ctx.record('connection', ctx.connectionName);
    }
    const serviceAccount = connection.cloudResource?.serviceAccountId;
    if (!serviceAccount) {
      throw new ObjinferError(
        ErrorType.ResourceConflict,
        `connection ${ctx.connectionName} is not a Cloud resource connection (it has no service account); choose another connection name`,
      );
    }
    return { step: 'connection', action, detail: `${ctx.connectionName} (service account ${serviceAccount})`, serviceAccount };
  });
}

export async function ensureBucket(ctx: GcpContext): Promise<StepOutcome> {
  const { bucket, location } = ctx.spec;
  return ctx.call(`bucket ${bucket}`, async () => {
    const handle = ctx.clients.storage.bucket(bucket);
    const [exists] = await handle.exists();
    if (exists) {
      const [allowed] = await handle.iam.testPermissions(['storage.objects.create', 'storage.objects.get']);
      if (!Object.values(allowed).every(Boolean)) {
        throw new ObjinferError(
          ErrorType.ResourceConflict,
          `bucket ${bucket} exists but you cannot write to it (bucket names are global: it may belong to someone else); choose another bucket name`,
        );
      }
      return { step: 'bucket', action: 'exists', detail: `gs://${bucket}` };
    }
    try {
      await ctx.clients.storage.createBucket(bucket, { location });
    } catch (error) {
      if (describeGoogleError(error).kind === 'conflict') {
        throw new ObjinferError(ErrorType.ResourceConflict, `bucket ${bucket} belongs to another project; choose another bucket name`);
      }
      throw error;
    }
    await ctx.record('bucket', bucket);
    return { step: 'bucket', action: 'created', detail: `gs://${bucket}` };
  });
}

/** Whether the caller may change the bucket's IAM policy: "the user owns it". */
async function owns(ctx: GcpContext, bucket: string): Promise<boolean> {
  const [allowed] = await ctx.clients.storage.bucket(bucket).iam.testPermissions(['storage.buckets.getIamPolicy', 'storage.buckets.setIamPolicy']);
  return Object.values(allowed).every(Boolean);
}

/**
 * roles/storage.objectViewer for the connection's service account on the model bucket and
 * on the image buckets the user owns: read-modify-write with the policy's etag, retried
 * when someone else changed it meanwhile; no duplicate binding; nothing else touched.
 */
export async function grantObjectViewer(ctx: GcpContext, serviceAccount: string): Promise<StepOutcome[]> {
  const member = `serviceAccount:${serviceAccount}`;
  const buckets = [...new Set([ctx.spec.bucket, ...ctx.spec.sourceUris.map(bucketOf)])];
  const outcomes: StepOutcome[] = [];
  for (const bucket of buckets) {
    outcomes.push(
      await ctx.call(`grant on gs://${bucket}`, async (): Promise<StepOutcome> => {
        const detail = `${OBJECT_VIEWER} for ${member} on gs://${bucket}`;
        if (!(await owns(ctx, bucket))) {
          return { step: 'grant', action: 'skipped', detail: `${detail}: not yours to change (e.g. public sample data); its objects must already be readable` };
        }
        const added = await changeBinding(ctx, bucket, member, 'add');
        if (added) await ctx.record('grant', `${bucket} ${member}`);
        return { step: 'grant', action: added ? 'created' : 'exists', detail };
      }),
    );
  }
  return outcomes;
}

/** Adds or removes the member's objectViewer binding; false when there was nothing to do. */
export async function changeBinding(ctx: GcpContext, bucket: string, member: string, change: 'add' | 'remove'): Promise<boolean> {
  const iam = ctx.clients.storage.bucket(bucket).iam;
  for (let attempt = 1; ; attempt++) {
    const [policy] = await iam.getPolicy({ requestedPolicyVersion: 3 });
    const bindings = policy.bindings ?? [];
    const binding = bindings.find((b) => b.role === OBJECT_VIEWER && !b.condition);
    const has = binding?.members?.includes(member) ?? false;
    if (has === (change === 'add')) return false;
    if (change === 'add') {
      if (binding) binding.members = [...(binding.members ?? []), member];
      else bindings.push({ role: OBJECT_VIEWER, members: [member] });
    } else {
      binding!.members = binding!.members!.filter((m) => m !== member);
    }
    try {
      await iam.setPolicy({ ...policy, bindings: bindings.filter((b) => (b.members ?? []).length > 0) });
      return true;
    } catch (error) {
      if (describeGoogleError(error).code !== 412 || attempt >= 5) throw error; // 412: changed since we read it
    }
  }
}

/** The model's files (an ONNX file, or a SavedModel folder), relative name -> local path. */
async function modelFiles(source: string, type: string): Promise<{ name: string; path: string }[]> {
  const info = await stat(source);
  if (!info.isDirectory()) return [{ name: type === 'ONNX' ? 'model.onnx' : relative(join(source, '..'), source), path: source }];
  return savedModelFiles(source);
}

/** The labels file's lines, from a local path or gs://. */
export async function readLabelsSource(ctx: GcpContext): Promise<string[] | undefined> {
  const source = ctx.spec.model.labels;
  if (!source) return undefined;
  if (!source.startsWith('gs://')) return parseLabels(await readFile(source, 'utf8'));
  const [bytes] = await ctx.call(`read model.labels ${source}`, () =>
    ctx.clients.storage
      .bucket(bucketOf(source))
      .file(source.replace(/^gs:\/\/[^/]+\//, ''))
      .download(),
  );
  return parseLabels(bytes.toString('utf8'));
}

/**
 * Uploads the model's files under a folder named by their content (files already there
 * with the same MD5 are skipped), or uses a gs:// model in place. The artifact's version is
 * the prediction version; its content digest names the BigQuery model's content.
 */
export async function uploadModel(ctx: GcpContext): Promise<ModelArtifact> {
  const { model, bucket } = ctx.spec;
  const labels = await readLabelsSource(ctx);
  if (model.source.startsWith('gs://')) return modelInPlace(ctx, labels);
  return ctx.call(`upload model ${model.name}`, async () => {
    const files = await modelFiles(model.source, model.type);
    const hash = createHash('sha256');
    const contents = new Map<string, Buffer>();
    for (const file of files) {
      const bytes = await readFile(file.path);
      contents.set(file.name, bytes);
      hash.update(file.name).update(bytes);
    }
    const digest = hash.digest('hex').slice(0, 12);
    const prefix = `models/${model.name}/${digest}/`;
    let uploaded = 0;
    for (const file of files) {
      const object = ctx.clients.storage.bucket(bucket).file(prefix + file.name);
      const bytes = contents.get(file.name)!;
      const md5 = createHash('md5').update(bytes).digest('base64');
      const [exists] = await object.exists();
      if (exists) {
        const [metadata] = await object.getMetadata();
        if (metadata.md5Hash === md5) continue;
      }
      await object.save(bytes, { resumable: false, validation: 'md5' });
      await ctx.record('object', `${bucket}/${prefix}${file.name}`);
      uploaded++;
    }
    const base = `gs://${bucket}/${prefix}`;
    const version = predictionVersion(digest, labels, ctx.spec);
    return {
      step: 'upload model',
      action: uploaded > 0 ? 'created' : 'exists',
      detail: `${files.length} file(s) -> ${base} (${uploaded} uploaded; prediction version ${version})`,
      version,
      contentDigest: digest,
      uri: model.type === 'ONNX' ? `${base}model.onnx` : `${base}*`,
      filesUploaded: uploaded,
      filesSkipped: files.length - uploaded,
    };
  });
}

/** A model already in Cloud Storage: used in place, its content named by its objects' MD5s. */
async function modelInPlace(ctx: GcpContext, labels: string[] | undefined): Promise<ModelArtifact> {
  const { model } = ctx.spec;
  return ctx.call(`model ${model.source}`, async () => {
    const prefix = model.source.replace(/^gs:\/\/[^/]+\//, '');
    const [objects] = await ctx.clients.storage.bucket(bucketOf(model.source)).getFiles({ prefix });
    if (objects.length === 0) throw new ObjinferError(ErrorType.NotFound, `model.source: nothing at ${model.source}`);
    const hash = createHash('sha256');
    for (const object of objects) hash.update(object.name).update(String(object.metadata.md5Hash ?? ''));
    const digest = hash.digest('hex').slice(0, 12);
    // A SavedModel folder (config normalises it to end in "/") is imported as folder/*.
    const uri = model.type === 'ONNX' ? model.source : `${model.source}*`;
    return {
      step: 'upload model',
      action: 'skipped',
      detail: `used in place: ${model.source}`,
      version: predictionVersion(digest, labels, ctx.spec),
      contentDigest: digest,
      uri,
      filesUploaded: 0,
      filesSkipped: objects.length,
    };
  });
}

/** The label that tells which model content a BigQuery model holds. */
const CONTENT_LABEL = 'objinfer_model';

/** Replaced only when the model's content changed; the content rides on the model as a label (models API). */
export async function ensureModel(ctx: GcpContext, artifact: ModelArtifact): Promise<StepOutcome> {
  const { model } = ctx.spec;
  const handle = ctx.dataset.model(model.name);
  return ctx.call(`model ${model.name}`, async (): Promise<StepOutcome> => {
    const [exists] = await handle.exists();
    let previous: string | undefined;
    if (exists) {
      const [metadata] = await handle.getMetadata();
      previous = metadata.labels?.[CONTENT_LABEL];
      if (previous === artifact.contentDigest) return { step: 'model', action: 'exists', detail: `${model.name} (content ${artifact.contentDigest})` };
    }
    const sql = createModelSql(ctx.spec, artifact.uri);
    await ctx.statement(`model ${model.name}`, ctx.statementJobId('model', sql), sql);
    await handle.setMetadata({ labels: { [CONTENT_LABEL]: artifact.contentDigest } });
    if (!exists) await ctx.record('model', model.name);
    return {
      step: 'model',
      action: exists ? 'updated' : 'created',
      detail: `${model.name} model_type=${model.type} model_path=${artifact.uri}${previous ? ` (was content ${previous})` : ''}`,
    };
  });
}

/** Feature and label column names from the models API; the image size from the config. */
export async function describeModel(ctx: GcpContext, artifact: ModelArtifact): Promise<ModelDescription> {
  const { model } = ctx.spec;
  const [metadata] = await ctx.call(`describe model ${model.name}`, () => ctx.dataset.model(model.name).getMetadata());
  const inputName = metadata.featureColumns?.[0]?.name;
  const outputs = (metadata.labelColumns ?? []).map((c: { name?: string; type?: { typeKind?: string } }) => ({
    name: String(c.name),
    rank: c.type?.typeKind === 'ARRAY' ? 2 : 1,
  }));
  if (!inputName || outputs.length === 0) {
    throw new ObjinferError(
      ErrorType.ModelShapeMismatch,
      `model ${model.name} has no feature or label columns (features: ${JSON.stringify(metadata.featureColumns ?? [])}); is it an image classifier?`,
    );
  }
  const labels = (await readLabelsSource(ctx)) ?? [];
  const choice = chooseOutput(outputs, model.output, labels.length || undefined);
  if ('error' in choice) throw new ObjinferError(ErrorType.ModelShapeMismatch, choice.error);
  if (!model.inputSize) {
    throw new ObjinferError(
      ErrorType.InvalidConfig,
      "model.inputSize: BigQuery does not report an imported model's image size; set it (224 for the tutorial's ResNet-50)",
    );
  }
  return {
    version: artifact.version,
    inputName,
    outputName: choice.name,
    outputNames: outputs.map((o: { name: string }) => o.name),
    inputSize: model.inputSize,
    classCount: labels.length,
    modelUri: artifact.uri,
  };
}

/** The key every results and errors row has: (uri, generation, model_version). */
const KEY_FIELDS: TableField[] = [
  { name: 'uri', type: 'STRING', mode: 'REQUIRED' },
  { name: 'generation', type: 'INTEGER', mode: 'REQUIRED' },
  { name: 'model_version', type: 'STRING', mode: 'REQUIRED' },
];

export const RESULTS_SCHEMA: TableField[] = [
  ...KEY_FIELDS,
  { name: 'label', type: 'STRING' },
  { name: 'score', type: 'FLOAT' },
  {
    name: 'top_k',
    type: 'RECORD',
    mode: 'REPEATED',
    fields: [
      { name: 'label', type: 'STRING' },
      { name: 'index', type: 'INTEGER' },
      { name: 'score', type: 'FLOAT' },
    ],
  },
  { name: 'probabilities', type: 'FLOAT', mode: 'REPEATED' },
  { name: 'run_id', type: 'STRING', mode: 'REQUIRED' },
  { name: 'predicted_at', type: 'TIMESTAMP', mode: 'REQUIRED' },
];

export const ERRORS_SCHEMA: TableField[] = [
  ...KEY_FIELDS,
  { name: 'error', type: 'STRING', mode: 'REQUIRED' },
  { name: 'run_id', type: 'STRING', mode: 'REQUIRED' },
  { name: 'failed_at', type: 'TIMESTAMP', mode: 'REQUIRED' },
  { name: 'kind', type: 'STRING' },
];

const LABELS_SCHEMA: TableField[] = [
  { name: 'model_version', type: 'STRING', mode: 'REQUIRED' },
  { name: 'index', type: 'INTEGER', mode: 'REQUIRED' },
  { name: 'label', type: 'STRING', mode: 'REQUIRED' },
];

/** Results and errors are clustered on the key: per-run guards and reads touch only their version's blocks. */
const CLUSTERING = { fields: ['model_version', 'uri'] };

export async function ensureResultTables(ctx: GcpContext, model: ModelDescription): Promise<StepOutcome[]> {
  const { results, dataset } = ctx.spec;
  const outcomes: StepOutcome[] = [];
  for (const [name, schema, clustered] of [
    [results.table, RESULTS_SCHEMA, true],
    [results.errorsTable, ERRORS_SCHEMA, true],
    [results.labelsTable, LABELS_SCHEMA, false],
  ] as const) {
    outcomes.push(
      await ctx.call(`table ${name}`, async (): Promise<StepOutcome> => {
        const table = ctx.dataset.table(name);
        const [exists] = await table.exists();
        if (exists) {
          await addMissingFields(table, schema);
          return { step: 'table', action: 'exists', detail: `${dataset}.${name}` };
        }
        await ctx.dataset.createTable(name, { schema: [...schema], ...(clustered ? { clustering: CLUSTERING } : {}) });
        await ctx.record('table', name);
        return { step: 'table', action: 'created', detail: `${dataset}.${name}` };
      }),
    );
  }
  await loadLabels(ctx, model.version);
  return outcomes;
}

/** Tables made by an earlier objinfer may lack a field added since (errors.kind): add it. */
async function addMissingFields(table: ReturnType<GcpContext['dataset']['table']>, schema: readonly TableField[]): Promise<void> {
  const [metadata] = await table.getMetadata();
  const fields: TableField[] = metadata.schema?.fields ?? [];
  const missing = schema.filter((f) => !fields.some((existing) => existing.name === f.name));
  if (missing.length > 0) await table.setMetadata({ schema: { fields: [...fields, ...missing] } });
}

/** The labels table holds each version's labels once (one atomic statement); batches read them from there. */
async function loadLabels(ctx: GcpContext, version: string): Promise<void> {
  const labels = await readLabelsSource(ctx);
  if (!labels?.length) return;
  const sql = loadLabelsSql(ctx.spec);
  await ctx.statement('load labels', ctx.statementJobId('labels', sql), sql, { model_version: version, labels });
}
