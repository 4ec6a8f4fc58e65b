/**
 * The gcp backend through the real Google client libraries, on the real Temporal dev
 * server: Cloud Storage is the fake-gcs-server emulator; BigQuery, the Connection API,
 * bucket IAM, Resource Manager and the Reservation API are the strict stand-in in
 * test/support/gcp.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkflowFailedError, type Client, type Connection } from '@temporalio/client';
import { OAuth2Client } from 'google-auth-library';
import { stringify } from 'yaml';
import { GcpBackend } from '../src/backends/gcp';
import { workflowIdFor } from '../src/workflows/contract';
import { cleanupPipeline, startPipeline, waitForResult } from '../src/client';
import { loadConfig, type PipelineConfig } from '../src/config';
import { writeColorModel } from '../src/demo';
import { CORRUPT_JPEG, colorPixels, encodeImage } from '../src/demo/images';
import type { ColorLabel } from '../src/models/colorClassifier';
import { startFakeGcs, type FakeGcs } from './support/gcp/fakeGcs';
import { GoogleStandIn, type StandInOptions } from './support/gcp/standIn';
import { activityStarts, capturedLogs, historyText, testClient, uniqueQueue, withWorker } from './support/pipeline';

const PROJECT = 'objinfer-test';
let fakeGcs: FakeGcs;
let client: Client;
let connection: Connection;
let counter = 0;
const standIns: GoogleStandIn[] = [];

beforeAll(async () => {
  fakeGcs = await startFakeGcs();
  ({ client, connection } = await testClient());
});
afterEach(async () => {
  for (const standIn of standIns.splice(0)) await standIn.stop();
});
afterAll(async () => {
  await fakeGcs.stop();
  await connection.close();
});

const staticToken = () => {
  const auth = new OAuth2Client();
  auth.setCredentials({ access_token: 'stand-in-token', expiry_date: Date.now() + 3_600_000 });
  return auth;
};

interface GcpFixture {
  config: PipelineConfig;
  standIn: GoogleStandIn;
  imageBucket: string;
  taskQueue: string;
  run(): Promise<Awaited<ReturnType<typeof waitForResult>>>;
  cleanup(deleteData: boolean): ReturnType<typeof cleanupPipeline>;
}

/** Images of the given colours (PNG) in a fresh bucket of the emulator, a stand-in, and a gcp config. */
async function gcpFixture(labels: ColorLabel[], options: Partial<StandInOptions> = {}, config: Record<string, unknown> = {}, extra: string[] = []): Promise<GcpFixture> {
  const id = `${Date.now().toString(36)}${counter++}`;
  const imageBucket = `objinfer-images-${id}`;
  await fakeGcs.createBucket(imageBucket);
  for (const [i, label] of labels.entries()) {
    await fakeGcs.upload(imageBucket, `${label}-${i}.png`, await encodeImage(colorPixels(label, 20, 20, i), 20, 20, 'png'));
  }
  for (const name of extra) await fakeGcs.upload(imageBucket, name, CORRUPT_JPEG);
  const standIn = new GoogleStandIn({ project: PROJECT, fakeGcsUrl: fakeGcs.url, hasReservationAssignment: true, undecodable: 'broken', ...options });
  await standIn.start();
  standIns.push(standIn);
  const dir = mkdtempSync(join(tmpdir(), 'objinfer-gcp-'));
  const model = await writeColorModel(join(dir, 'models'));
  const taskQueue = uniqueQueue('gcp');
  writeFileSync(
    join(dir, 'gcp.yaml'),
    stringify({
      name: `gcp-${id}`,
      backend: 'gcp',
      project: PROJECT,
      location: 'US',
      dataset: 'resnet_inference_test',
      connection: 'lake-connection',
      bucket: `objinfer-models-${id}`,
      objectTable: 'vision_images',
      sourceUris: [`gs://${imageBucket}/*.png`],
      model: { name: 'resnet', type: 'ONNX', source: model.model, labels: model.labels, inputSize: 32 },
      results: { topK: 3 },
      batch: { size: 4, concurrency: 2, heartbeatTimeout: '10s' },
      temporal: { taskQueue },
      ...config,
    }),
  );
  const loaded = loadConfig(join(dir, 'gcp.yaml'));
  const backendFor = (c: PipelineConfig) => new GcpBackend(c, { baseUrl: standIn.url, authClient: staticToken() });
  return {
    config: loaded,
    standIn,
    imageBucket,
    taskQueue,
    run: () =>
      withWorker(taskQueue, async () => {
        const { workflowId } = await startPipeline(client, loaded);
        return waitForResult(client, workflowId);
      }, backendFor),
    cleanup: (deleteData) => withWorker(taskQueue, () => cleanupPipeline(client, loaded, { deleteData }), backendFor),
  };
}

const failureOf = async (promise: Promise<unknown>) => {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(WorkflowFailedError);
  let cause = (error as WorkflowFailedError).cause as (Error & { type?: string; cause?: unknown }) | undefined;
  while (cause?.cause) cause = cause.cause as typeof cause;
  return cause!;
};

const resultsOf = (f: GcpFixture) => f.standIn.datasets.get('resnet_inference_test')!.tables.get('predictions')!.rows;
const predictJobs = (f: GcpFixture) => f.standIn.jobs.filter((j) => j.query.includes('ML.PREDICT'));

test('the whole procedure: provisions, predicts every image once with its label, with the statements written by hand', async () => {
  const f = await gcpFixture(['red', 'green', 'blue', 'yellow', 'cyan', 'magenta', 'white', 'black', 'red', 'blue']);
  const summary = await f.run();
  expect(summary).toMatchObject({ objectsSeen: 10, predicted: 10, failed: 0, alreadyDone: 0, batches: 3 });
  expect(f.standIn.unknown).toEqual([]);

  const rows = resultsOf(f);
  expect(rows).toHaveLength(10);
  for (const row of rows) expect(String(row.label)).toBe(String(row.uri).split('/').pop()!.split('-')[0]);
  expect(new Set(rows.map((r) => r.uri)).size).toBe(10);

  const [objectTable, probe, model, plan] = f.standIn.statements;
  expect(objectTable).toBe(
    'CREATE OR REPLACE EXTERNAL TABLE `objinfer-test.resnet_inference_test.vision_images`\n' +
      'WITH CONNECTION `objinfer-test.us.lake-connection`\n' +
      `OPTIONS (object_metadata = 'SIMPLE', uris = ['gs://${f.imageBucket}/*.png'])`,
  );
  expect(probe).toBe('SELECT COUNT(*) AS objects FROM `objinfer-test.resnet_inference_test.vision_images`');
  expect(model).toBe(
    'CREATE OR REPLACE MODEL `objinfer-test.resnet_inference_test.resnet`\n' +
      `OPTIONS (model_type = 'ONNX', model_path = 'gs://${f.config.bucket}/models/resnet/${summary.modelVersion}/model.onnx',\n` +
      `  labels = [('objinfer_version', '${summary.modelVersion}')])`,
  );
  expect(plan).toMatch(/^SELECT COUNT\(\*\) AS objects_seen, COUNTIF\(NOT \(NOT EXISTS \(SELECT 1 FROM `objinfer-test\.resnet_inference_test\.predictions` AS x/);
  const predicts = predictJobs(f);
  expect(predicts.map((j) => j.id).sort()).toEqual([0, 1, 2].map((i) => `objinfer_${summary.runId}_b${i}of3_a1`));
  expect(predicts[0]!.query).toContain('ML.RESIZE_IMAGE(ML.DECODE_IMAGE(o.data), 32, 32, FALSE) AS input_1');

  expect(await fakeGcs.list(f.config.bucket)).toEqual([`models/resnet/${summary.modelVersion}/model.onnx`]);
  const member = `serviceAccount:${f.standIn.connections.get('projects/objinfer-test/locations/us/connections/lake-connection')!.serviceAccountId}`;
  for (const bucket of [f.config.bucket, f.imageBucket]) {
    const viewers = f.standIn.policies.get(bucket)!.bindings.find((b) => b.role === 'roles/storage.objectViewer')!;
    expect(viewers.members).toEqual([member]);
  }
});

test('security: the token never reaches history or logs, and the only grant is objectViewer on the two buckets', async () => {
  const ok = await gcpFixture(['red', 'green'], {}, {}, ['broken.png']);
  const logsBefore = capturedLogs.length;
  const summary = await ok.run();
  const denied = await gcpFixture(['red'], { missingPermissions: ['bigquery.jobs.create'] });
  await failureOf(denied.run());
  for (const workflowId of [summary.workflowId, workflowIdFor(denied.config.name)]) {
    const { text } = await historyText(client, workflowId);
    expect(text).not.toContain('stand-in-token');
    expect(text).not.toMatch(/Bearer|authorization/i);
  }
  const logs = capturedLogs.slice(logsBefore).join('\n');
  expect(logs.length).toBeGreaterThan(0);
  expect(logs).not.toContain('stand-in-token');
  // IAM writes: bucket policies only (never the project's), one role, one member.
  const iamWrites = ok.standIn.requests.filter((r) => /setIamPolicy|PUT .*\/iam$/.test(r));
  expect(iamWrites.sort()).toEqual([`PUT /storage/v1/b/${ok.config.bucket}/iam`, `PUT /storage/v1/b/${ok.imageBucket}/iam`].sort());
  for (const bucket of [ok.config.bucket, ok.imageBucket]) {
    expect(ok.standIn.policies.get(bucket)!.bindings.map((b) => [b.role, b.members.length])).toContainEqual(['roles/storage.objectViewer', 1]);
  }
});

test('a second run creates nothing, uploads nothing and runs no batch job when nothing is new', async () => {
  const f = await gcpFixture(['red', 'green', 'blue']);
  await f.run();
  const jobsBefore = f.standIn.jobs.length;
  const requestsBefore = f.standIn.requests.length;
  const second = await f.run();
  expect(second).toMatchObject({ predicted: 0, alreadyDone: 3, batches: 0 });
  expect(second.provisioned.filter((p) => p.action !== 'exists')).toEqual([]);
  const newRequests = f.standIn.requests.slice(requestsBefore);
  expect(newRequests.filter((r) => /^(POST|PUT) \/(upload\/)?storage\/v1\/b\/[^/]+(\/o|\/iam)?$/.test(r) && !r.endsWith('/b'))).toEqual([]);
  expect(newRequests.filter((r) => r.startsWith('POST /bigquery/v2/projects/objinfer-test/datasets') || r.startsWith('POST /v1/'))).toEqual([]);
  const newJobs = f.standIn.jobs.slice(jobsBefore).map((j) => j.query.split('\n')[0] ?? '');
  expect(newJobs.some((q) => q.startsWith('CREATE') || q.startsWith('INSERT'))).toBe(false);
});

test('a batch whose insert response is lost re-attaches to its job: exactly one job per batch', async () => {
  const f = await gcpFixture(['red', 'green', 'blue', 'white', 'black', 'cyan'], { loseFirstBatchInsertResponse: true });
  const summary = await f.run();
  expect(summary.predicted).toBe(6);
  const ids = predictJobs(f).map((j) => j.id);
  expect(ids).toHaveLength(summary.batches);
  expect(new Set(ids).size).toBe(ids.length);
  expect(resultsOf(f)).toHaveLength(6);
});

test('an undecodable object is isolated by splitting its batch; everything else is predicted', async () => {
  const f = await gcpFixture(['red', 'green', 'blue', 'white', 'black', 'cyan', 'yellow'], {}, { batch: { size: 8, concurrency: 1 } }, ['broken-1.png']);
  const summary = await f.run();
  expect(summary).toMatchObject({ objectsSeen: 8, predicted: 7, failed: 1, batches: 1 });
  const errors = f.standIn.datasets.get('resnet_inference_test')!.tables.get('predictions_errors')!.rows;
  expect(errors.map((e) => e.uri)).toEqual([`gs://${f.imageBucket}/broken-1.png`]);
  expect(String(errors[0]!.error)).toMatch(/ML\.DECODE_IMAGE/);
  expect(predictJobs(f).some((j) => j.id.includes('_s'))).toBe(true); // split jobs have their own IDs
});

test('IAM propagation: reading the object table fails with the retryable type, retries, then succeeds', async () => {
  const f = await gcpFixture(['red', 'blue'], { propagationMs: 3000 });
  const summary = await f.run();
  expect(summary.predicted).toBe(2);
  const step = (await activityStarts(client, summary.workflowId)).find((s) => s.activityType === 'ensureObjectTable')!;
  expect(step.attempt).toBeGreaterThan(1);
  expect(step.lastFailureType).toBe('IamPropagationPending');
});

test('IAM propagation that outlasts iam.propagationTimeout fails with a clear error', async () => {
  const f = await gcpFixture(['red'], { propagationMs: 3_600_000 }, { iam: { propagationTimeout: '4s' } });
  const cause = await failureOf(f.run());
  expect(cause.type).toBe('IamPropagationTimeout');
  expect(cause.message).toMatch(/did not propagate within 4\.0s \(last error: .*Permission denied while globbing file pattern/);
});

test('missing permissions: one error listing each, before anything is created', async () => {
  const f = await gcpFixture(['red'], { missingPermissions: ['bigquery.connections.delegate', 'storage.buckets.setIamPolicy'] });
  const cause = await failureOf(f.run());
  expect(cause.type).toBe('PermissionDenied');
  expect(cause.message).toMatch(/you lack 2 permission\(s\) on project objinfer-test: bigquery\.connections\.delegate, storage\.buckets\.setIamPolicy/);
  expect(f.standIn.datasets.size).toBe(0);
  expect(f.standIn.connections.size).toBe(0);
});

test('a dataset that exists in another location is a clear error', async () => {
  const f = await gcpFixture(['red']);
  f.standIn.datasets.set('resnet_inference_test', { location: 'EU', tables: new Map(), models: new Map() });
  const cause = await failureOf(f.run());
  expect(cause.type).toBe('ResourceConflict');
  expect(cause.message).toMatch(/exists in location EU, not US/);
});

test('the grant survives a concurrent policy change: retried on the new etag, the other binding kept', async () => {
  const f = await gcpFixture(['red'], { concurrentPolicyChange: true });
  await f.run();
  const policy = f.standIn.policies.get(f.config.bucket)!;
  expect(policy.bindings.map((b) => b.role).sort()).toEqual(['roles/storage.legacyBucketOwner', 'roles/storage.objectAdmin', 'roles/storage.objectViewer']);
  expect(policy.bindings.find((b) => b.role === 'roles/storage.objectAdmin')!.members).toEqual(['user:someone-else@example.com']);
});

test('image buckets the user does not own (public samples) are skipped with a note', async () => {
  const f = await gcpFixture(['red', 'blue']);
  const foreign = f.imageBucket;
  const g = await gcpFixture([], { foreignBuckets: [foreign] }, { sourceUris: [`gs://${foreign}/*.png`] });
  const summary = await g.run();
  expect(summary.predicted).toBe(2);
  const note = summary.provisioned.find((p) => p.step === 'grant' && p.detail.includes(foreign))!;
  expect(note.action).toBe('skipped');
  expect(note.detail).toMatch(/not yours to change/);
  expect(g.standIn.policies.has(foreign)).toBe(false);
});

test('with a reservation configured, an Enterprise reservation and a QUERY assignment are created once', async () => {
  const f = await gcpFixture(['red'], { hasReservationAssignment: false }, { reservation: { name: 'objinfer', slots: 50 } });
  const first = await f.run();
  expect(first.provisioned.filter((p) => p.step === 'reservation' || p.step === 'assignment').map((p) => p.action)).toEqual(['created', 'created']);
  const second = await f.run();
  expect(second.provisioned.filter((p) => p.step === 'reservation' || p.step === 'assignment').map((p) => p.action)).toEqual(['exists', 'exists']);
  expect([...f.standIn.reservations.values()][0]!.assignments).toHaveLength(1);
});

test('without a reservation or assignment, preflight warns', async () => {
  const f = await gcpFixture(['red'], { hasReservationAssignment: false });
  const summary = await f.run();
  expect(summary.warnings.join('\n')).toMatch(/no reservation assignment in US: ML\.PREDICT on imported models over object tables needs an Enterprise reservation/);
});

test('cleanup removes only what objinfer created; data, dataset, connection and bucket only with --yes', async () => {
  const f = await gcpFixture(['red', 'green']);
  await f.run();
  const dataset = f.standIn.datasets.get('resnet_inference_test')!;
  dataset.tables.set('users_own_table', { schema: { fields: [{ name: 'x' }] }, rows: [], insertIds: new Set() });
  f.standIn.policies.get(f.imageBucket)!.bindings.push({ role: 'roles/storage.objectViewer', members: ['user:analyst@example.com'] });

  const kept = await f.cleanup(false);
  expect(kept.filter((o) => o.action === 'removed').map((o) => o.step).sort()).toEqual(['grant', 'grant', 'model', 'model file', 'table', 'table']);
  expect([...dataset.tables.keys()].sort()).toEqual(['_objinfer_created', 'predictions', 'predictions_errors', 'users_own_table']);
  expect(dataset.models.size).toBe(0);
  expect(await fakeGcs.list(f.config.bucket)).toEqual([]);
  expect(f.standIn.policies.get(f.imageBucket)!.bindings.find((b) => b.role === 'roles/storage.objectViewer')!.members).toEqual(['user:analyst@example.com']);
  expect(f.standIn.connections.size).toBe(1);

  const all = await f.cleanup(true);
  expect(all.filter((o) => o.action === 'removed').map((o) => o.step).sort()).toEqual(['bucket', 'connection', 'dataset', 'table', 'table']);
  expect(f.standIn.datasets.size).toBe(0);
  expect(f.standIn.connections.size).toBe(0);
  expect(await fakeGcs.list(f.imageBucket)).toHaveLength(2); // the images were never objinfer's
});

test('plan lists every call in order, with dry-run byte estimates for the statements', async () => {
  const f = await gcpFixture(['red']);
  const calls = await new GcpBackend(f.config, { baseUrl: f.standIn.url, authClient: staticToken() }).describePlan();
  expect(calls.map((c) => c.step)).toEqual(['preflight', 'dataset', 'connection', 'bucket', 'grant', 'upload model', 'object table', 'model', 'describe model', 'tables', 'plan', 'infer']);
  expect(calls.find((c) => c.step === 'object table')!.estimatedBytes).toBeGreaterThan(0);
  expect(calls.find((c) => c.step === 'dataset')!.estimatedBytes).toBeUndefined();
  expect(f.standIn.datasets.size).toBe(0); // nothing was changed
});

test('a TensorFlow SavedModel folder is uploaded file by file and imported from its folder', async () => {
  const saved = mkdtempSync(join(tmpdir(), 'objinfer-savedmodel-'));
  mkdirSync(join(saved, 'variables'));
  writeFileSync(join(saved, 'saved_model.pb'), 'graph');
  writeFileSync(join(saved, 'variables', 'variables.index'), 'index');
  writeFileSync(join(saved, 'variables', 'variables.data-00000-of-00001'), 'weights');
  const f = await gcpFixture(['red', 'blue'], {}, {});
  const config = { ...f.config, model: { ...f.config.model, type: 'TENSORFLOW' as const, source: saved } };
  const backend = new GcpBackend(config, { baseUrl: f.standIn.url, authClient: staticToken() });
  await backend.ensureDataset(); // the record of what objinfer creates lives in the dataset
  await backend.ensureBucket();
  const artifact = await backend.uploadModel();
  expect(artifact).toMatchObject({ filesUploaded: 3, filesSkipped: 0, uri: `gs://${config.bucket}/models/resnet/${artifact.version}/*` });
  expect((await fakeGcs.list(config.bucket)).sort()).toEqual(
    ['saved_model.pb', 'variables/variables.data-00000-of-00001', 'variables/variables.index'].map((n) => `models/resnet/${artifact.version}/${n}`),
  );
  expect(await backend.uploadModel()).toMatchObject({ version: artifact.version, filesUploaded: 0, filesSkipped: 3 });
  await backend.ensureModel(artifact);
  expect(f.standIn.statements.at(-1)).toBe(
    'CREATE OR REPLACE MODEL `objinfer-test.resnet_inference_test.resnet`\n' +
      `OPTIONS (model_type = 'TENSORFLOW', model_path = 'gs://${config.bucket}/models/resnet/${artifact.version}/*',\n` +
      `  labels = [('objinfer_version', '${artifact.version}')])`,
  );
});
