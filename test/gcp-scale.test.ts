/**
 * The gcp backend when something is wrong for every image, not for one (issue 29): the
 * canary before the fan-out, the breaker while isolating, back-off on passing failures and
 * quotas that do not pass. The failures are injected by the gateway (failPredict: a test
 * injection, named as such); what is asserted is what the run does with them: the jobs it
 * issues, what it records, and what the user reads.
 */
import { parseConnectionId } from '../src/backends/gcp/objectTable';
import { COLOR_LABELS, type ColorLabel } from '../src/models/colorClassifier';
import { CORRUPT_JPEG, type GcpFixture } from './support/gcp/fixture';
import { failureOf, gcpSuite } from './support/gcp/suite';

const { fixture } = gcpSuite();

const colours = (n: number): ColorLabel[] => Array.from({ length: n }, (_, i) => COLOR_LABELS[i % COLOR_LABELS.length]!);
const SYSTEMATIC = { reason: 'invalidQuery', message: 'Input tensor input_1 expects shape [1, 224, 224, 3]; got [1, 32, 32, 3]' };

/** A backend whose dataset, connection, bucket and grants exist: the steps before the object table. */
async function provisionedUpToObjectTable(f: GcpFixture) {
  const backend = f.backend();
  await backend.ensureDataset();
  const connection = await backend.ensureConnection();
  await backend.ensureBucket();
  await backend.grantObjectViewer(connection.serviceAccount);
  return backend;
}

/** Rows of the errors table (none when no run made it). */
async function errorRows(f: GcpFixture): Promise<number> {
  const rows = await f.rows<{ n: number }>('SELECT COUNT(*) AS n FROM DATASET.predictions_errors').catch((error: Error) => {
    if (/not found|notFound/i.test(error.message)) return [{ n: 0 }];
    throw error;
  });
  return Number(rows[0]!.n);
}

test('a cause every image shares, over 1,000 pending images, fails the run at the canary: five small jobs, no batch, nothing recorded as failed', async () => {
  const f = await fixture({ labels: colours(1_000), config: { batch: { size: 4, concurrency: 2 } }, gateway: { failPredict: SYSTEMATIC } });
  const cause = await failureOf(f.run());
  expect(cause.type).toBe('Refused');
  expect(cause.message).toMatch(/every image of the canary failed .*nothing was recorded: .*Input tensor input_1 expects shape/);
  expect(f.gateway.canaryStatements).toHaveLength(5); // the canary, then its four parts
  expect(f.gateway.batchStatements).toEqual([]);
  expect(await errorRows(f)).toBe(0);
});

test('a cause that starts after the canary stops at the breaker: five jobs per batch in flight, the images still pending', async () => {
  const f = await fixture({
    labels: colours(120),
    config: { batch: { size: 8, concurrency: 2 } },
    gateway: { failPredict: { ...SYSTEMATIC, only: 'batches' } },
  });
  const cause = await failureOf(f.run());
  expect(cause.type).toBe('Refused');
  expect(cause.message).toMatch(/failed on the whole batch and on each of its 4 parts, so the cause is not one image; .*none recorded as failed/);
  // 15 batches planned; at most `concurrency` of them ran, each one job and then its four parts.
  expect(f.gateway.batchStatements.length).toBeLessThanOrEqual(2 * 5);
  expect(await errorRows(f)).toBe(0);
  // Fixed, the next run predicts all of them.
  f.gateway.options.failPredict = undefined;
  expect(await f.run()).toMatchObject({ predicted: 120, failed: 0 });
});

test('one bad image still fails only itself: the canary goes on, the batch is isolated, the jobs stay near N/size + log2(size)', async () => {
  const f = await fixture({ labels: colours(32), extra: { 'broken.png': CORRUPT_JPEG }, config: { batch: { size: 8, concurrency: 2 } } });
  const summary = await f.run();
  expect(summary).toMatchObject({ predicted: 32, failed: 1 });
  const batches = Math.ceil(33 / 8);
  // The failing batch: itself, its four parts, then halves of the failing part down to the image.
  // Halving is by a hash of the URI (random names here), which parts two images with odds 1/2 a
  // level: log2(size) levels and 6 more are exceeded once in 2^6 runs at worst, per-image isolation
  // (one job an image: 33 and more) always.
  expect(f.gateway.batchStatements.length).toBeLessThanOrEqual(batches + 4 + 2 * (Math.log2(8) + 6));
  expect(await errorRows(f)).toBe(1);
});

test('rateLimitExceeded is retried with growing pauses (1 s, then 2 s) and the batch then succeeds', async () => {
  const f = await fixture({
    labels: colours(4),
    config: { batch: { size: 8, concurrency: 1 } },
    gateway: {
      failPredict: { reason: 'rateLimitExceeded', message: 'Exceeded rate limits: too many concurrent queries for this project', only: 'batches', count: 2 },
    },
  });
  expect(await f.run()).toMatchObject({ predicted: 4, failed: 0 });
  const batchJobs = f.gateway.insertedAt.filter((j) => /_b0of1_a\d$/.test(j.jobId));
  expect(batchJobs.map((j) => j.jobId.slice(-2))).toEqual(['a1', 'a2', 'a3']);
  expect(batchJobs[1]!.at - batchJobs[0]!.at).toBeGreaterThanOrEqual(1000);
  expect(batchJobs[2]!.at - batchJobs[1]!.at).toBeGreaterThanOrEqual(2000);
});

// BigQuery's own words for DML contention on one table ("Transform data with DML", concurrent
// jobs). The reason field is not given there: resourcesExceeded is what the error-messages page
// gives "Resources exceeded during query execution"; the conflict carries none here.
test.each([
  [
    'resourcesExceeded',
    'Resources exceeded during query execution: Too many DML statements outstanding against table my-project:objinfer_test.predictions_pending, limit is 20.',
  ],
  [undefined, 'Could not serialize access to table my-project:objinfer_test.predictions due to concurrent update'],
])('DML contention on a table (%s: %s) is waited out with back-off, not isolated image by image', async (reason, message) => {
  const f = await fixture({
    labels: colours(4),
    config: { batch: { size: 8, concurrency: 1 } },
    gateway: { failPredict: { reason, message, only: 'batches', count: 2 } },
  });
  expect(await f.run()).toMatchObject({ predicted: 4, failed: 0 });
  const batchJobs = f.gateway.insertedAt.filter((j) => /_b0of1_/.test(j.jobId));
  expect(batchJobs.map((j) => j.jobId.slice(-2))).toEqual(['a1', 'a2', 'a3']); // the same batch again, never a part of it
  expect(batchJobs[1]!.at - batchJobs[0]!.at).toBeGreaterThanOrEqual(1000);
  expect(await errorRows(f)).toBe(0);
});

test('a batch job cancelled outside objinfer stops the run as JobCancelled, saying so, with nothing recorded as failed', async () => {
  const f = await fixture({
    labels: colours(4),
    config: { batch: { size: 8, concurrency: 1 } },
    // What a job cancelled from the console or with `bq cancel` ends with: errorResult reason "stopped".
    gateway: { failPredict: { reason: 'stopped', message: 'Job execution was cancelled: User requested cancellation', only: 'batches' } },
  });
  const cause = await failureOf(f.run());
  expect(cause.type).toBe('JobCancelled');
  expect(cause.message).toMatch(
    /Job execution was cancelled: User requested cancellation\. The BigQuery job was cancelled outside objinfer .* run again to go on/,
  );
  expect(cause.message).not.toMatch(/\n/);
  expect(f.gateway.batchStatements).toHaveLength(1); // one job: not retried, not split
  expect(await errorRows(f)).toBe(0);
});

test('quotaExceeded is not retried: the run fails at once naming the quota and what to do, nothing recorded as failed', async () => {
  const f = await fixture({
    labels: colours(4),
    config: { batch: { size: 8, concurrency: 1 } },
    gateway: { failPredict: { reason: 'quotaExceeded', message: 'Quota exceeded: Your project exceeded quota for DML statements per day', only: 'batches' } },
  });
  const cause = await failureOf(f.run());
  expect(cause.type).toBe('QuotaExceeded');
  expect(cause.message).toMatch(
    /Quota exceeded: Your project exceeded quota for DML statements per day\. A BigQuery quota .* does not lift: wait for it to reset or raise it/,
  );
  expect(f.gateway.batchStatements).toHaveLength(1);
  expect(await errorRows(f)).toBe(0);
});

test("the object table's connection is recognised in each form BigQuery gives it (bigquery.v2's two, and the DDL's)", () => {
  const want = { project: 'my-project', location: 'us', id: 'lake-connection' };
  expect(parseConnectionId('my-project.us;lake-connection')).toEqual(want);
  expect(parseConnectionId('projects/my-project/locations/US/connections/lake-connection')).toEqual(want);
  expect(parseConnectionId('my-project.US.lake-connection')).toEqual(want);
  expect(parseConnectionId('lake-connection')).toBeUndefined();
});

test('a metadata refresh still running when its attempt ends is waited on by the next attempt of the step, not started again', async () => {
  const f = await fixture({ labels: colours(3), gateway: { refreshGets: 8 } });
  const backend = await provisionedUpToObjectTable(f);
  const refreshes = () => f.gateway.statements.filter((s) => s.startsWith('CALL BQ.REFRESH_EXTERNAL_METADATA_CACHE'));
  const first = backend.ensureObjectTable('run-1:7'); // an attempt whose worker is about to be lost
  while (refreshes().length === 0) await new Promise((done) => setTimeout(done, 50));
  const second = await backend.ensureObjectTable('run-1:7'); // the next attempt of the same step
  expect(second).toMatchObject({ action: 'exists' });
  await first;
  expect(refreshes()).toHaveLength(1);
  await backend.ensureObjectTable('run-2:7'); // another run refreshes again
  expect(refreshes()).toHaveLength(2);
  await backend.close?.();
});

test('the object table caches its listing for 7 days (the most BigQuery allows); one made with 1 day, as before, is made again', async () => {
  const f = await fixture({ labels: colours(2) });
  const backend = await provisionedUpToObjectTable(f);
  expect(await backend.ensureObjectTable('run-1:5')).toMatchObject({ action: 'created' });
  expect(f.gateway.statements.find((s) => s.startsWith('CREATE OR REPLACE EXTERNAL TABLE'))).toMatch(/max_staleness = INTERVAL 7 DAY/);
  expect(await backend.ensureObjectTable('run-2:5')).toMatchObject({ action: 'exists' });
  f.gateway.shim.objectTables.get(`${f.spec.project}.${f.dataset}.${f.spec.objectTable}`)!.maxStaleness = '0-0 1 0:0:0';
  expect(await backend.ensureObjectTable('run-3:5')).toMatchObject({ action: 'updated' });
  await backend.close?.();
});

test('objinfer plan prints the run in all: the job formula, and after a first run the listed objects with the batches and jobs they make', async () => {
  const f = await fixture({ labels: colours(10), config: { batch: { size: 4, concurrency: 2 } } });
  const before = (await f.backend().describePlan()).at(-1)!;
  expect(before).toMatchObject({ step: 'run total', call: expect.stringMatching(/^jobs: 7 \+ 2 x ceil\(P \/ 4\) .*P is known once the object table exists/) });
  const issued = f.gateway.statements.length;
  const summary = await f.run();
  // What the run issued: the seven fixed jobs and two per batch, as the model says.
  expect(f.gateway.statements.slice(issued).map((s) => s.split(/\s/)[0])).toHaveLength(7 + 2 * summary.batches);
  const refusedBefore = f.gateway.refused.length;
  const plan = await f.backend().describePlan();
  expect(plan.at(-1)!.call).toMatch(/the object table lists 10 objects, so at most 3 batches and 13 jobs/);
  // Once a run made the tables, ZetaSQL accepts every dry run: the batch feeds the model's own feature column.
  expect(f.gateway.refused.slice(refusedBefore)).toEqual([]);
  expect(plan.find((c) => c.step === 'infer')!.estimatedBytes).toBeDefined();
});

test('an image bucket neither yours nor public fails at once, saying what its owner must grant, instead of waiting out iam.propagationTimeout', async () => {
  const owner = await fixture({ labels: colours(2) });
  const f = await fixture({
    labels: [],
    gateway: { privateBuckets: [owner.imageBucket] },
    config: { sourceUris: [`gs://${owner.imageBucket}/*`], iam: { propagationTimeout: '30m' } },
  });
  const cause = await failureOf(f.run()); // the test's own bound (10 min) is less than the 30 minutes it used to wait
  expect(cause.type).toBe('PermissionDenied');
  expect(cause.message).toMatch(
    /BigQuery cannot read gs:\/\/objinfer-images-\w+ through the connection, and it is neither yours nor public, .*ask the owner to grant roles\/storage\.objectViewer to serviceAccount:bqcx-/,
  );
});

test('a small bucket whose canary holds a bad image: the canary tries its images one by one and still reads the model', async () => {
  const f = await fixture({ labels: colours(2), extra: { 'broken.png': CORRUPT_JPEG } });
  const summary = await f.run();
  expect(summary).toMatchObject({ predicted: 2, failed: 1 });
  expect(summary.warnings.join('\n')).toMatch(/an image of the canary failed: Error while decoding image gs:\/\/.*broken\.png/);
  expect(f.gateway.canaryStatements.length).toBeGreaterThan(5); // the canary, its four parts, then single images
});
