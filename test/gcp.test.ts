/**
 * The gcp backend through the real Google client libraries, on the real Temporal dev
 * server, against things this project did not write: every statement is analysed as written
 * by Google's ZetaSQL analyser (test/support/gcp/zetasql/) and then runs on the BigQuery
 * emulator, Cloud Storage is fake-gcs-server, and every request to the APIs neither covers
 * is checked against Google's discovery documents (see test/support/gcp/gateway.ts). What
 * the emulator cannot run, the test-only shim (test/support/gcp/shim.ts) carries out: the
 * object-table DDL, its metadata refresh and CREATE MODEL; it also replaces the ML.PREDICT
 * call (its outputs here are the shim's scores), writes query parameters in as literals and
 * computes MOD of fingerprints exactly.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { openGcpResults } from '../src/backends/gcp';
import { colorPixels } from '../src/demo/images';
import { COLOR_LABELS, type ColorLabel } from '../src/models/colorClassifier';
import { buildReport } from '../src/report';
import { Ids } from '../src/workflows/contract';
import { CORRUPT_JPEG, PROJECT, staticToken } from './support/gcp/fixture';
import { shimScores } from './support/gcp/shim';
import { failureOf, gcpSuite } from './support/gcp/suite';
import { activityStarts, capturedLogs, historyText } from './support/pipeline';

const suite = gcpSuite();
const { fixture } = suite;

/** The top-k an object named `<colour>-...` must get from the shim's model, worked out here. */
function expectedTopK(name: string, k: number) {
  const scores = shimScores(name, [...COLOR_LABELS]);
  return scores
    .map((score, index) => ({ label: COLOR_LABELS[index]!, index, score }))
    .sort((a, b) => b.score - a.score || a.index - b.index)
    .slice(0, k);
}

interface ResultRow {
  uri: string;
  generation: number;
  model_version: string;
  label: string;
  score: number;
  top_k: { label: string; index: number; score: number }[];
  probabilities: number[];
  run_id: string;
}

test('the whole procedure on the emulator: right top-k labels at the right offsets, the bad objects in the errors table, nothing twice', async () => {
  const colours: ColorLabel[] = ['red', 'green', 'blue', 'yellow', 'cyan', 'magenta', 'white', 'black', 'red', 'blue'];
  const f = await fixture({ labels: colours, extra: { 'broken.jpg': CORRUPT_JPEG } });
  const summary = await f.run();
  expect(summary).toMatchObject({ objectsSeen: 11, predicted: 10, failed: 1, alreadyDone: 0 });

  const rows = await f.rows<ResultRow>('SELECT * FROM DATASET.predictions ORDER BY uri');
  expect(rows).toHaveLength(10);
  for (const row of rows) {
    const name = row.uri.split('/').pop()!;
    const expected = expectedTopK(name, 3);
    expect(row.label).toBe(name.split('-')[0]);
    expect(row.top_k.map((t) => [t.label, t.index])).toEqual(expected.map((t) => [t.label, t.index]));
    expect(row.top_k.map((t) => t.score)).toEqual(expected.map((t) => expect.closeTo(t.score, 12)));
    expect(row.score).toBeCloseTo(expected[0]!.score, 12);
    expect(row.probabilities).toEqual([]);
    expect(row.model_version).toBe(summary.modelVersion);
  }
  const errors = await f.rows<{ uri: string; error: string; kind: string }>('SELECT uri, error, kind FROM DATASET.predictions_errors');
  expect(errors).toEqual([
    {
      uri: `gs://${f.imageBucket}/broken.jpg`,
      error: expect.stringMatching(/ML\.PREDICT failed for this object: Error while decoding image/),
      kind: 'permanent',
    },
  ]);

  // Nothing twice, and a second run finds nothing to do, with no ML.PREDICT job.
  const batchJobs = f.gateway.batchStatements.length;
  const again = await f.run();
  expect(again).toMatchObject({ objectsSeen: 11, predicted: 0, failed: 0, alreadyDone: 10, failedBefore: 1, batches: 0 });
  expect(f.gateway.batchStatements).toHaveLength(batchJobs);
  const counts = await f.rows<{ n: number; keys: number }>(
    'SELECT COUNT(*) AS n, COUNT(DISTINCT CONCAT(uri, CAST(generation AS STRING))) AS keys FROM DATASET.predictions',
  );
  expect(counts).toEqual([{ n: 10, keys: 10 }]);
});

/** Datasets in the emulator: what a run created (or did not). */
async function datasets(): Promise<string[]> {
  const [found] = await suite.world.emulator.direct.getDatasets();
  return found.map((d) => d.id!);
}

test('a second run creates nothing, uploads nothing, lists the bucket once and runs no batch job', async () => {
  const f = await fixture({ labels: ['red', 'green', 'blue'] });
  const first = await f.run();
  expect(f.gateway.shim.listings).toBe(1); // one listing per run, whatever the batch count
  expect(f.gateway.batchStatements).toHaveLength(first.batches);
  const callsBefore = f.gateway.calls.length;
  const second = await f.run();
  expect(second).toMatchObject({ predicted: 0, alreadyDone: 3, batches: 0 });
  expect(second.provisioned.filter((p) => !['exists', 'skipped'].includes(p.action))).toEqual([]);
  expect(f.gateway.shim.listings).toBe(2);
  const newCalls = f.gateway.calls.slice(callsBefore);
  expect(newCalls.filter((c) => /storage\.objects\.insert|datasets\.insert|connections\.create|setIamPolicy/.test(c))).toEqual([]);
  expect(newCalls.filter((c) => /tables\.insert/.test(c))).toHaveLength(1); // the run's own pending table, which expires
  expect(f.gateway.batchStatements).toHaveLength(first.batches);
  expect(f.gateway.canaryStatements).toHaveLength(2); // one small read per run, nothing written
});

test('jobs per run: one per batch plus a constant; the statements are refused nowhere', async () => {
  const f = await fixture({
    labels: ['red', 'green', 'blue', 'white', 'black', 'cyan', 'yellow', 'magenta', 'red'],
    config: { batch: { size: 2, concurrency: 2 } },
  });
  const summary = await f.run();
  expect(summary).toMatchObject({ predicted: 9, batches: 5 });
  expect(f.gateway.batchStatements).toHaveLength(5);
  // Object table, its refresh, the model, the canary, the labels, the pending table and its count: seven, whatever the
  // size; and each batch reads its URI range first.
  expect(f.gateway.canaryStatements).toHaveLength(1);
  expect(f.gateway.statements.filter((s) => s.startsWith('SELECT MIN(uri) AS uri_lo'))).toHaveLength(5);
  expect(f.gateway.statements.length - 2 * f.gateway.batchStatements.length).toBe(7);
});

test('a batch whose insert response is lost re-attaches to its job: one job per batch, every row once', async () => {
  const f = await fixture({ labels: ['red', 'green', 'blue', 'white', 'black', 'cyan'], gateway: { loseFirstBatchInsertResponse: true } });
  const summary = await f.run();
  expect(summary.predicted).toBe(6);
  expect(f.gateway.batchStatements).toHaveLength(summary.batches);
  expect(await f.rows('SELECT COUNT(*) AS n, COUNT(DISTINCT uri) AS keys FROM DATASET.predictions')).toEqual([{ n: 6, keys: 6 }]);
});

test('objects BigQuery would refuse (over 10,000,000 bytes, not an image type) go to the errors table before ML.PREDICT', async () => {
  const big = new Uint8Array(10_000_001);
  big.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const f = await fixture({ labels: ['red', 'blue'], extra: { 'huge.png': big } });
  await suite.world.gcs.upload(f.imageBucket, 'notes.txt', Buffer.from('hello'), 'text/plain');
  const summary = await f.run();
  expect(summary).toMatchObject({ objectsSeen: 4, predicted: 2, failed: 2 });
  const errors = await f.rows<{ uri: string; error: string }>('SELECT uri, error FROM DATASET.predictions_errors ORDER BY uri');
  expect(errors).toEqual([
    { uri: `gs://${f.imageBucket}/huge.png`, error: 'image is 10000001 bytes; ML.DECODE_IMAGE accepts at most 10000000 bytes' },
    { uri: `gs://${f.imageBucket}/notes.txt`, error: 'content type text/plain is not JPEG, PNG or BMP; ML.DECODE_IMAGE cannot decode it' },
  ]);
  expect(f.gateway.statements.some((s) => s.includes('objinfer-split-'))).toBe(false); // nothing had to be isolated
});

test('keepProbabilities stores every class score, in output order', async () => {
  const f = await fixture({ labels: ['cyan'], config: { results: { topK: 2, keepProbabilities: true } } });
  await f.run();
  const [row] = await f.rows<{ uri: string; probabilities: number[] }>('SELECT uri, probabilities FROM DATASET.predictions');
  expect(row!.probabilities).toEqual(shimScores(row!.uri.split('/').pop()!, [...COLOR_LABELS]).map((p) => expect.closeTo(p, 12)));
});

test('IAM propagation: refreshing the listing fails with the retryable type, retries, then succeeds', async () => {
  // Counted, not timed: under a loaded CI run the steps before the object table outlasted a 3 s window.
  const f = await fixture({ labels: ['red', 'blue'], gateway: { propagationReads: 2 } });
  const summary = await f.run();
  expect(summary.predicted).toBe(2);
  const step = (await activityStarts(suite.client, summary.workflowId)).find((s) => s.activityType === 'ensureObjectTable' && s.attempt > 1)!;
  expect(step.lastFailureType).toBe('IamPropagationPending');
});

test('IAM propagation that outlasts iam.propagationTimeout fails with a clear error', async () => {
  // 90 s: in fresh-clone runs of the whole suite no attempt ended within 4 s, once none within 12 s,
  // and twice none within 30 s (gcp.test.ts took 1046 s and 1259 s there): an attempt must end for a last error.
  const f = await fixture({ labels: ['red'], gateway: { propagationMs: 3_600_000 }, config: { iam: { propagationTimeout: '90s' } } });
  const cause = await failureOf(f.run());
  expect(cause.type).toBe('IamPropagationTimeout');
  expect(cause.message).toMatch(/did not propagate within 1m30s \(waited \S+; last error: .*Permission denied while globbing file pattern/);
});

test('missing permissions: one error listing each, before anything is created', async () => {
  const f = await fixture({
    labels: ['red'],
    gateway: { missingPermissions: ['bigquery.connections.delegate', 'storage.buckets.setIamPolicy', 'bigquery.tables.updateData'] },
  });
  const before = await datasets();
  const cause = await failureOf(f.run());
  expect(cause.type).toBe('PermissionDenied');
  expect(cause.message).toMatch(
    /you lack 3 permission\(s\) on project objinfer-test: bigquery\.connections\.delegate, bigquery\.tables\.updateData, storage\.buckets\.setIamPolicy\./,
  );
  expect(await datasets()).toEqual(before);
  expect(f.gateway.standIn.connections.size).toBe(0);
});

test('storage permissions granted on the bucket (not the project) are enough when the bucket exists', async () => {
  const f = await fixture({
    labels: ['red'],
    gateway: {
      bucketOnlyPermissions: [
        'storage.objects.create',
        'storage.objects.get',
        'storage.objects.list',
        'storage.buckets.getIamPolicy',
        'storage.buckets.setIamPolicy',
      ],
    },
  });
  await suite.world.gcs.createBucket(f.spec.bucket);
  const summary = await f.run();
  expect(summary.predicted).toBe(1);
});

test('the Resource Manager API switched off: preflight says which API to enable', async () => {
  const f = await fixture({ labels: ['red'], gateway: { resourceManagerDisabled: true } });
  const cause = await failureOf(f.run());
  expect(cause.type).toBe('PermissionDenied');
  expect(cause.message).toMatch(
    /Cloud Resource Manager API has not been used .*Enable the API in the project \(e\.g\. gcloud services enable cloudresourcemanager\.googleapis\.com/,
  );
});

test("an error of a gax client (gRPC code) is classified by its code: FAILED_PRECONDITION fails at once with Google's message", async () => {
  const f = await fixture({
    labels: ['red'],
    gateway: { refuseConnectionCreate: [400, 'FAILED_PRECONDITION', 'Cloud resource connections are not allowed by an organisation policy'] },
  });
  const cause = await failureOf(f.run());
  expect(cause.type).toBe('Refused');
  expect(cause.message).toMatch(/connection lake-connection: 9 FAILED_PRECONDITION: Cloud resource connections are not allowed by an organisation policy/);
  const attempts = (await activityStarts(suite.client, Ids.pipeline(f.spec.name))).filter((s) => s.activityType === 'ensureConnection');
  expect(attempts).toHaveLength(1);
});

test("a batch script whose second statement BigQuery refuses fails the run at once, with one job and Google's message, no image recorded as failed", async () => {
  const f = await fixture({ labels: ['red', 'blue'], gateway: { refusalsExpected: true } });
  // A results table made by someone else, with a score column that is text: every insert is refused.
  await suite.world.emulator.direct.createDataset(f.dataset, { location: 'US' });
  await f.rows(
    'CREATE TABLE DATASET.predictions (uri STRING, generation INT64, model_version STRING, label STRING, score STRING, top_k ARRAY<STRUCT<label STRING, index INT64, score FLOAT64>>, probabilities ARRAY<FLOAT64>, run_id STRING, predicted_at TIMESTAMP)',
  );
  const cause = await failureOf(f.run());
  expect(cause.type).toBe('Refused');
  // ZetaSQL's message and position, as the job's errorResult: the statement, not an image, is at fault.
  expect(cause.message).toMatch(/Query column 5 has type FLOAT64 which cannot be inserted into column score, which has type STRING at \[12:1\]/);
  expect(f.gateway.batchStatements).toHaveLength(1);
  expect(await f.rows('SELECT COUNT(*) AS n FROM DATASET.predictions_errors')).toEqual([{ n: 0 }]);
});

test('CREATE MODEL carries only the documented options; the content label is set through the models API and read back', async () => {
  const f = await fixture({ labels: ['red'] });
  await f.run();
  const create = f.gateway.statements.find((s) => s.startsWith('CREATE OR REPLACE MODEL'))!;
  expect(create).toMatch(
    /^CREATE OR REPLACE MODEL `objinfer-test\.ds_\w+\.resnet`\nOPTIONS \(model_type = 'ONNX', model_path = 'gs:\/\/[^']+\/models\/resnet\/[0-9a-f]{12}\/model\.onnx'\)$/,
  );
  expect(f.gateway.calls).toContain('PATCH bigquery.models.patch');
  const second = await f.run();
  expect(second.provisioned.find((p) => p.step === 'model')!.action).toBe('exists');
  expect(f.gateway.statements.filter((s) => s.startsWith('CREATE OR REPLACE MODEL'))).toHaveLength(1);
});

test('a dataset that exists in another location is a clear error', async () => {
  const f = await fixture({ labels: ['red'] });
  await suite.world.emulator.direct.createDataset(f.dataset, { location: 'EU' });
  const cause = await failureOf(f.run());
  expect(cause.type).toBe('ResourceConflict');
  expect(cause.message).toMatch(/exists in location EU, not US/);
});

test('the grant survives a concurrent policy change: retried on the new etag, the other binding kept', async () => {
  const f = await fixture({ labels: ['red'], gateway: { concurrentPolicyChange: true } });
  await f.run();
  const policy = f.gateway.standIn.policies.get(f.spec.bucket)!;
  expect(policy.bindings.map((b) => b.role).sort()).toEqual(['roles/storage.legacyBucketOwner', 'roles/storage.objectAdmin', 'roles/storage.objectViewer']);
  expect(policy.bindings.find((b) => b.role === 'roles/storage.objectAdmin')!.members).toEqual(['user:someone-else@example.com']);
});

test('image buckets the user does not own (public samples) are skipped with a note', async () => {
  const owner = await fixture({ labels: ['red', 'blue'] });
  const g = await fixture({ labels: [], gateway: { foreignBuckets: [owner.imageBucket] }, config: { sourceUris: [`gs://${owner.imageBucket}/*`] } });
  const summary = await g.run();
  expect(summary.predicted).toBe(2);
  const note = summary.provisioned.find((p) => p.step === 'grant' && p.detail.includes(owner.imageBucket))!;
  expect(note.action).toBe('skipped');
  expect(note.detail).toMatch(/not yours to change/);
});

test('a reservation: created with its QUERY assignment once; cleanup --yes deletes the assignment, then the reservation', async () => {
  const f = await fixture({ labels: ['red'], gateway: { existingAssignment: undefined }, config: { reservation: { name: 'objinfer', slots: 50 } } });
  const first = await f.run();
  expect(first.provisioned.filter((p) => p.step === 'reservation' || p.step === 'assignment').map((p) => p.action)).toEqual(['created', 'created']);
  const second = await f.run();
  expect(second.provisioned.filter((p) => p.step === 'reservation' || p.step === 'assignment').map((p) => p.action)).toEqual(['exists', 'exists']);
  expect(f.gateway.standIn.assignments.size).toBe(1);
  const removed = await f.cleanup(true);
  expect(removed.filter((o) => o.step === 'assignment' || o.step === 'reservation').map((o) => [o.step, o.action])).toEqual([
    ['assignment', 'removed'],
    ['reservation', 'removed'],
  ]);
  expect(f.gateway.standIn.reservations.size).toBe(0);
  expect(f.gateway.standIn.assignments.size).toBe(0);
});

test('a project whose QUERY assignment points elsewhere: a clear error, nothing assigned twice', async () => {
  const f = await fixture({ labels: ['red'], gateway: { existingAssignment: 'team-reservation' }, config: { reservation: { name: 'objinfer' } } });
  const cause = await failureOf(f.run());
  expect(cause.type).toBe('ResourceConflict');
  expect(cause.message).toMatch(
    /already has a QUERY assignment in US, to projects\/objinfer-test\/locations\/US\/reservations\/team-reservation; .*set reservation\.name to team-reservation/,
  );
  expect(f.gateway.standIn.assignments.size).toBe(1);
});

test('without a QUERY assignment (only a PIPELINE one), preflight fails before anything is created, saying how to get capacity', async () => {
  const f = await fixture({ labels: ['red'], gateway: { existingAssignment: undefined } });
  f.gateway.standIn.assignments.set('x/assignments/9', { name: 'x/assignments/9', assignee: `projects/${PROJECT}`, jobType: 'PIPELINE', state: 'ACTIVE' });
  const cause = await failureOf(f.run());
  expect(cause.type).toBe('InvalidConfig');
  expect(cause.message).toMatch(
    /^reservation: project objinfer-test has no QUERY reservation assignment in US, so its queries run on-demand, .*set "reservation: \{ name: objinfer, slots: 50 \}" in the config .*or ask an admin for a QUERY assignment/,
  );
  expect(f.gateway.calls.filter((c) => /datasets\.insert|connections\.create|buckets\.insert/.test(c))).toEqual([]);
});

test("an assignment inherited from the organisation is the project's capacity: no warning, and a configured reservation is not added over it", async () => {
  const inherited = await fixture({ labels: ['red'], gateway: { existingAssignment: undefined, inheritedAssignment: 'org-pool' } });
  const summary = await inherited.run();
  expect(summary.predicted).toBe(1);
  expect(summary.warnings.filter((w) => /reservation/.test(w))).toEqual([]);
  const configured = await fixture({
    labels: ['red'],
    gateway: { existingAssignment: undefined, inheritedAssignment: 'org-pool' },
    config: { reservation: { name: 'objinfer', slots: 50 } },
  });
  const again = await configured.run();
  expect(again.provisioned.find((p) => p.step === 'reservation')).toMatchObject({ action: 'skipped' });
  expect(again.warnings.join('\n')).toMatch(
    /reservation objinfer was not created: projects\/objinfer-test already gets capacity from .*org-pool, assigned to organizations\/1234/,
  );
  expect(configured.gateway.standIn.assignments.size).toBe(1);
  expect(configured.gateway.standIn.reservations.size).toBe(1);
});

test('an assignment still PENDING, or to a Standard-edition reservation, fails preflight with what to do', async () => {
  const pending = await fixture({ labels: ['red'], gateway: { existingAssignmentState: 'PENDING' } });
  const waiting = await failureOf(pending.run());
  expect([waiting.type, waiting.message]).toEqual(['Refused', expect.stringMatching(/is PENDING: until it is ACTIVE BigQuery runs the project on-demand/)]);
  const standard = await fixture({ labels: ['red'], gateway: { existingEdition: 'STANDARD' } });
  const edition = await failureOf(standard.run());
  expect([edition.type, edition.message]).toEqual([
    'InvalidConfig',
    expect.stringMatching(/is of the STANDARD edition; imported models over object tables need Enterprise or Enterprise Plus/),
  ]);
  const empty = await fixture({ labels: ['red'], gateway: { existingSlots: '0' } });
  expect((await failureOf(empty.run())).message).toMatch(/has no slots \(baseline 0, no autoscaling\)/);
});

test('cleanup removes only what objinfer created; data, dataset, connection and bucket only with --yes', async () => {
  const f = await fixture({ labels: ['red', 'green'] });
  await f.run();
  await f.rows('CREATE TABLE DATASET.users_own_table (x STRING)');
  const kept = await f.cleanup(false);
  expect(
    kept
      .filter((o) => o.action === 'removed')
      .map((o) => o.step)
      .sort(),
  ).toEqual(['grant', 'grant', 'model', 'model file', 'table', 'table']);
  const [tables] = await suite.world.emulator.direct.dataset(f.dataset).getTables();
  expect(
    tables
      .map((t) => t.id)
      .filter((id) => !id!.startsWith('_shim') && !id!.startsWith('_objinfer_pending'))
      .sort(),
  ).toEqual(['_objinfer_created', 'predictions', 'predictions_errors', 'users_own_table']);
  expect(f.gateway.standIn.models.size).toBe(0);
  expect(await suite.world.gcs.list(f.spec.bucket)).toEqual([]);
  const all = await f.cleanup(true);
  expect(
    all
      .filter((o) => o.action === 'removed')
      .map((o) => o.step)
      .sort(),
  ).toEqual(['bucket', 'connection', 'dataset', 'table', 'table']);
  expect(await datasets()).not.toContain(f.dataset);
  expect(await suite.world.gcs.list(f.imageBucket)).toHaveLength(2); // the images were never objinfer's
});

test('results read back newest first, with the filters of `objinfer results`', async () => {
  const f = await fixture({ labels: ['red', 'green', 'blue'], config: { batch: { size: 1, concurrency: 1 } } });
  const summary = await f.run();
  const reader = openGcpResults(f.spec, { baseUrl: f.gateway.url, authClient: staticToken() });
  const all = await reader.readResults();
  expect(all).toHaveLength(3);
  const times = all.map((r) => Date.parse(r.predictedAt));
  expect([...times].sort((a, b) => b - a)).toEqual(times);
  expect((await reader.readResults({ label: 'green' })).map((r) => r.label)).toEqual(['green']);
  expect(await reader.readResults({ minScore: 0.95 })).toEqual([]);
  expect(await reader.readResults({ runId: summary.runId, limit: 2 })).toHaveLength(2);
  expect(await reader.readErrors()).toEqual([]);
});

test('the report shows gcp images as thumbnails read from Cloud Storage; an object that does not decode gets none', async () => {
  const labels: ColorLabel[] = ['red', 'green', 'blue'];
  const f = await fixture({ labels, extra: { 'broken.jpg': CORRUPT_JPEG } });
  await f.run();
  const scratch = () => readdirSync(tmpdir()).filter((name) => name.startsWith('objinfer-thumbnails-'));
  const before = scratch();
  const report = await buildReport(f.spec, {}, openGcpResults(f.spec, { baseUrl: f.gateway.url, authClient: staticToken() }));
  expect(scratch()).toEqual(before); // the downloaded objects' folder is gone
  expect(report.thumbnailNote).toBe('thumbnails made from the images, read from Cloud Storage (3 of 3)');
  expect(report.cards).toHaveLength(3);
  for (const card of report.cards) {
    // The thumbnail against the image's own pixels, made again here (20x20: a thumbnail keeps that size).
    const i = labels.indexOf(card.label as ColorLabel);
    expect(card.uri).toBe(`gs://${f.imageBucket}/${card.label}-${String(i).padStart(3, '0')}.png`);
    const jpeg = Buffer.from(card.thumbnail!.replace(/^data:image\/jpeg;base64,/, ''), 'base64');
    const { data, info } = await sharp(jpeg).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([20, 20, 3]);
    const distance = (label: ColorLabel) => {
      const source = colorPixels(label, 20, 20, i);
      return data.reduce((sum, v, j) => sum + Math.abs(v - source[j]!), 0) / data.length;
    };
    // Near its own image (JPEG at quality 70 over noisy pixels), far from the other colours'.
    const [own, ...others] = [card.label as ColorLabel, ...labels.filter((l) => l !== card.label)].map(distance);
    expect(own).toBeLessThan(20);
    for (const other of others) expect(other).toBeGreaterThan(3 * own!);
  }
  expect(report.errors).toEqual([expect.objectContaining({ uri: `gs://${f.imageBucket}/broken.jpg`, thumbnail: undefined })]);
});

test('a labels file on Cloud Storage is read like a local one: the same labels, the same prediction version', async () => {
  const f = await fixture({ labels: ['red'] });
  const backend = f.backend(f.spec);
  await backend.ensureDataset();
  await backend.ensureBucket();
  const local = await backend.uploadModel();
  await suite.world.gcs.upload(f.imageBucket, 'labels/colours.txt', readFileSync(f.spec.model.labels!), 'text/plain');
  const onGcs = { ...f.spec, model: { ...f.spec.model, labels: `gs://${f.imageBucket}/labels/colours.txt` } };
  expect((await f.backend(onGcs).uploadModel()).version).toBe(local.version);
  // Other labels make another version: the file was read, not skipped.
  await suite.world.gcs.upload(f.imageBucket, 'labels/renamed.txt', Buffer.from(`${[...COLOR_LABELS].reverse().join('\n')}\n`), 'text/plain');
  const renamed = { ...f.spec, model: { ...f.spec.model, labels: `gs://${f.imageBucket}/labels/renamed.txt` } };
  expect((await f.backend(renamed).uploadModel()).version).not.toBe(local.version);
});

test('a TensorFlow SavedModel folder is uploaded file by file and imported from its folder; one TensorFlow cannot load is refused at import', async () => {
  const saved = mkdtempSync(join(tmpdir(), 'objinfer-savedmodel-'));
  mkdirSync(join(saved, 'variables'));
  writeFileSync(join(saved, 'saved_model.pb'), 'graph');
  writeFileSync(join(saved, 'variables', 'variables.index'), 'index');
  writeFileSync(join(saved, 'variables', 'variables.data-00000-of-00001'), 'weights');
  const f = await fixture({ labels: ['red', 'blue'] });
  const spec = { ...f.spec, model: { ...f.spec.model, type: 'TENSORFLOW' as const, source: saved } };
  const backend = f.backend(spec);
  await backend.ensureDataset();
  await backend.ensureBucket();
  const artifact = await backend.uploadModel();
  expect(artifact).toMatchObject({ filesUploaded: 3, filesSkipped: 0, uri: `gs://${spec.bucket}/models/resnet/${artifact.contentDigest}/*` });
  expect(await backend.uploadModel()).toMatchObject({ version: artifact.version, filesUploaded: 0, filesSkipped: 3 });
  // Its bytes are no SavedModel: the import (the stand-in's TensorFlow) refuses it, as BigQuery's does.
  await expect(backend.ensureModel(artifact)).rejects.toMatchObject({
    type: 'Refused',
    message: expect.stringMatching(/Error while reading the TENSORFLOW model/),
  });
  expect(f.gateway.statements.at(-1)).toBe(
    `CREATE OR REPLACE MODEL \`${PROJECT}.${f.dataset}.resnet\`\nOPTIONS (model_type = 'TENSORFLOW', model_path = 'gs://${spec.bucket}/models/resnet/${artifact.contentDigest}/*')`,
  );
});

test('security: the token never reaches history or logs, and the only grant is objectViewer on the two buckets', async () => {
  const ok = await fixture({ labels: ['red', 'green'], extra: { 'broken.png': CORRUPT_JPEG } });
  const logsBefore = capturedLogs.length;
  const summary = await ok.run();
  const denied = await fixture({ labels: ['red'], gateway: { missingPermissions: ['bigquery.jobs.create'] } });
  await failureOf(denied.run());
  for (const workflowId of [summary.workflowId, Ids.pipeline(denied.spec.name)]) {
    const { text } = await historyText(suite.client, workflowId);
    expect(text).not.toContain('stand-in-token');
    expect(text).not.toMatch(/Bearer|authorization/i);
  }
  const logs = capturedLogs.slice(logsBefore).join('\n');
  expect(logs.length).toBeGreaterThan(0);
  expect(logs).not.toContain('stand-in-token');
  // IAM writes: bucket policies only (never the project's), one role, one member.
  expect(ok.gateway.calls.filter((c) => /IamPolicy/.test(c) && c.startsWith('PUT'))).toEqual([
    'PUT storage.buckets.setIamPolicy',
    'PUT storage.buckets.setIamPolicy',
  ]);
  for (const bucket of [ok.spec.bucket, ok.imageBucket]) {
    expect(ok.gateway.standIn.policies.get(bucket)!.bindings.map((b) => [b.role, b.members.length])).toContainEqual(['roles/storage.objectViewer', 1]);
  }
}, 300_000); // two runs: under a loaded suite, more than jest's 120 s
