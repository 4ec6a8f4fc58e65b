/**
 * The whole pipeline on the local backend, on the real Temporal dev server, with real
 * DuckDB, ONNX Runtime and sharp.
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { copyFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { WorkflowFailedError, type Client, type Connection } from '@temporalio/client';
import { createBackend as realBackendFor } from '../src/backends';
import { execFileSync, spawnSync } from 'node:child_process';
import { defaultPayloadConverter } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { cleanupPipeline, startPipeline, waitForResult } from '../src/client';
import { Ids, SearchAttributes } from '../src/workflows/contract';
import { COLOR_LABELS, type ColorLabel } from '../src/models/colorClassifier';
import { CLI } from './support/paths';
import { activityStarts, makeFixture, query, uniqueQueue, withWorker, testClient, testServer } from './support/pipeline';
import { TOP_K_TYPE } from '../src/backends/local/schema';
import { Warehouse } from '../src/backends/local/warehouse';
import { DuckDBConnection } from '@duckdb/node-api';
import * as ort from 'onnxruntime-node';
import { LocalContext } from '../src/backends/local/context';
import { ensureObjectTable } from '../src/backends/local/objectTable';
import { listeningForWaits, type StepNews } from '../src/backends/waiting';
import { decoderPool } from '../src/images/decoderPool';
import { availableParallelism } from 'node:os';

let client: Client;
let connection: Connection;

beforeAll(async () => {
  ({ client, connection } = await testClient());
});
afterAll(async () => {
  await connection.close();
});

const everyColourTwice: ColorLabel[] = [...COLOR_LABELS, ...COLOR_LABELS];

interface ResultRow {
  uri: string;
  label: string;
  model_version: string;
  [key: string]: unknown;
}

async function results(config: Parameters<typeof query>[0]) {
  return query<ResultRow>(config, `SELECT uri, label, model_version FROM objinfer_test.predictions ORDER BY uri`);
}

test('every image gets the expected label; the corrupt file lands in the errors table; counts match', async () => {
  const taskQueue = uniqueQueue('full');
  const fixture = await makeFixture({ labels: everyColourTwice, corrupt: true, taskQueue });
  const summary = await withWorker(taskQueue, async () => {
    const { workflowId } = await startPipeline(client, fixture.config, { searchAttributes: true });
    return waitForResult(client, workflowId);
  });

  const rows = await results(fixture.config);
  expect(rows).toHaveLength(16);
  for (const row of rows) {
    const expected = row.uri.split('/').pop()!.split('-')[0];
    expect(`${row.uri} ${row.label}`).toBe(`${row.uri} ${expected}`);
  }
  const errors = await query<{ uri: string; error: string }>(fixture.config, 'SELECT uri, error FROM objinfer_test.predictions_errors');
  expect(errors).toHaveLength(1);
  expect(errors[0]!.uri).toMatch(/broken\.jpg$/);
  expect(errors[0]!.error).toMatch(/corrupt JPEG/);

  expect(summary).toMatchObject({ objectsSeen: 17, predicted: 16, failed: 1, alreadyDone: 0, batches: Math.ceil(17 / 4) });
  expect(summary.labelCounts).toEqual(Object.fromEntries(COLOR_LABELS.map((l) => [l, 2])));
  const topK = await query<{ n: bigint }>(fixture.config, 'SELECT min(len(top_k)) AS n FROM objinfer_test.predictions');
  expect(Number(topK[0]!.n)).toBe(5);
});

test('a second run with nothing new infers nothing; two new files are exactly what the third run does', async () => {
  const taskQueue = uniqueQueue('incremental');
  const fixture = await makeFixture({ labels: ['red', 'green', 'blue', 'white', 'black'], corrupt: true, taskQueue });
  const run = () =>
    withWorker(taskQueue, async () => {
      const { workflowId } = await startPipeline(client, fixture.config);
      return waitForResult(client, workflowId);
    });
  const first = await run();
  expect(first.predicted).toBe(5);
  const before = await query(fixture.config, 'SELECT * FROM objinfer_test.predictions ORDER BY uri');

  const second = await run();
  expect(second).toMatchObject({ objectsSeen: 6, predicted: 0, failed: 0, alreadyDone: 5, failedBefore: 1, batches: 0 });
  const starts = await activityStarts(client, second.workflowId);
  expect(starts.filter((s) => s.activityType === 'predictBatch')).toHaveLength(0);
  expect(await query(fixture.config, 'SELECT * FROM objinfer_test.predictions ORDER BY uri')).toEqual(before);
  expect(second.provisioned.every((p) => p.action === 'exists')).toBe(true);

  const added = [await fixture.addImage('yellow', 'png'), await fixture.addImage('cyan', 'bmp')];
  const third = await run();
  expect(third).toMatchObject({ objectsSeen: 8, predicted: 2, failed: 0, alreadyDone: 5, failedBefore: 1 });
  const newRows = await query<{ uri: string; label: string }>(
    fixture.config,
    `SELECT uri, label FROM objinfer_test.predictions WHERE run_id = '${third.runId}' ORDER BY uri`,
  );
  expect(newRows.map((r) => [r.uri, r.label])).toEqual(
    [
      [added[0], 'yellow'],
      [added[1], 'cyan'],
    ].sort(),
  );
});

test('starting a pipeline that is running attaches to it instead of starting another', async () => {
  const taskQueue = uniqueQueue('attach');
  const fixture = await makeFixture({ labels: ['red', 'blue'], taskQueue });
  // No worker yet, so the first run stays running while the second start arrives.
  const first = await startPipeline(client, fixture.config);
  const second = await startPipeline(client, fixture.config);
  expect(first.attached).toBe(false);
  expect(second.attached).toBe(true);
  expect(second.handle.firstExecutionRunId).toBe(first.handle.firstExecutionRunId);
  const summary = await withWorker(taskQueue, () => waitForResult(client, first.workflowId));
  expect(summary.predicted).toBe(2);
});

test('IAM propagation: the object table step fails with the retryable type, retries, then succeeds', async () => {
  const taskQueue = uniqueQueue('iam');
  const fixture = await makeFixture({ labels: ['red', 'green'], taskQueue, config: { iam: { simulatedPropagationDelay: '3s' } } });
  const summary = await withWorker(taskQueue, async () => {
    const { workflowId } = await startPipeline(client, fixture.config);
    return waitForResult(client, workflowId);
  });
  expect(summary.predicted).toBe(2);
  const tableStep = (await activityStarts(client, summary.workflowId)).find((s) => s.activityType === 'ensureObjectTable')!;
  expect(tableStep.attempt).toBeGreaterThan(1);
  expect(tableStep.lastFailureType).toBe('IamPropagationPending');
});

test('IAM propagation longer than ten attempts of backoff is waited out on a real server, up to iam.propagationTimeout', async () => {
  // Ten attempts of the wait's backoff (1 s, x1.5, at most 20 s) take about 89 s; the grant "propagates" after 95 s.
  const taskQueue = uniqueQueue('iam-long');
  const fixture = await makeFixture({ labels: ['red'], taskQueue, config: { iam: { simulatedPropagationDelay: '95s', propagationTimeout: '10m' } } });
  const summary = await withWorker(taskQueue, async () => waitForResult(client, (await startPipeline(client, fixture.config)).workflowId));
  expect(summary.predicted).toBe(1);
  const tableStep = (await activityStarts(client, summary.workflowId)).find((s) => s.activityType === 'ensureObjectTable')!;
  expect(tableStep.attempt).toBeGreaterThan(10);
  expect(tableStep.lastFailureType).toBe('IamPropagationPending');
}, 240_000);

test('IAM propagation that outlasts iam.propagationTimeout fails with a clear error', async () => {
  const taskQueue = uniqueQueue('iam-timeout');
  const fixture = await makeFixture({
    labels: ['red'],
    taskQueue,
    config: { iam: { simulatedPropagationDelay: '1h', propagationTimeout: '4s' } },
  });
  const failure = await withWorker(taskQueue, async () => {
    const { workflowId } = await startPipeline(client, fixture.config);
    return waitForResult(client, workflowId).then(
      () => undefined,
      (error: unknown) => error,
    );
  });
  expect(failure).toBeInstanceOf(WorkflowFailedError);
  const cause = (failure as WorkflowFailedError).cause as { type?: string; message: string };
  expect(cause.type).toBe('IamPropagationTimeout');
  expect(cause.message).toMatch(/did not propagate within 4\.0s/);
});

test('a permission error that is not propagation fails at once, without retries', async () => {
  const taskQueue = uniqueQueue('denied');
  const fixture = await makeFixture({ labels: ['red'], taskQueue });
  // As when the user may not change bucket IAM: the grant step does nothing, so the
  // connection really lacks access and the real access check refuses.
  const withoutGrants = (config: Parameters<typeof realBackendFor>[0]) => {
    const backend = realBackendFor(config);
    backend.grantObjectViewer = async () => [];
    return backend;
  };
  const failure = await withWorker(
    taskQueue,
    async () => {
      const { workflowId } = await startPipeline(client, fixture.config);
      return waitForResult(client, workflowId).then(
        () => undefined,
        (error: unknown) => error,
      );
    },
    withoutGrants,
  );
  expect(failure).toBeInstanceOf(WorkflowFailedError);
  const cause = (failure as WorkflowFailedError).cause!;
  const root = cause.cause as { type?: string; message: string };
  expect(root.type).toBe('PermissionDenied');
  expect(root.message).toMatch(/does not have storage\.objects\.get access/);
  const history = await client.workflow.getHandle(Ids.pipeline(fixture.config.name)).fetchHistory();
  const failedAttempts = (history.events ?? []).filter((e) => e.activityTaskFailedEventAttributes);
  expect(failedAttempts).toHaveLength(1);
  expect(failedAttempts[0]!.activityTaskFailedEventAttributes!.retryState).toBe(temporal.api.enums.v1.RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE);
});

test('a model whose input size disagrees with the config fails naming both shapes', async () => {
  const taskQueue = uniqueQueue('shape');
  const fixture = await makeFixture({
    labels: ['red'],
    taskQueue,
    config: { model: { name: 'color_classifier', source: 'models/color-classifier.onnx', inputSize: 64 } },
  });
  const failure = await withWorker(taskQueue, async () => {
    const { workflowId } = await startPipeline(client, fixture.config);
    return waitForResult(client, workflowId).then(
      () => undefined,
      (error: unknown) => error,
    );
  });
  const root = ((failure as WorkflowFailedError).cause!.cause ?? {}) as { type?: string; message: string };
  expect(root.type).toBe('ModelShapeMismatch');
  expect(root.message).toMatch(/model\.inputSize is \[64, 64\] but model input "pixels" expects \[batch, 32, 32, 3\]/);
});

/** A backend for the fixture with everything provisioned up to the results tables, and its model. */
async function provisioned(config: Parameters<typeof realBackendFor>[0], beforeTables?: () => Promise<void>) {
  const backend = realBackendFor(config);
  const artifact = await backend.uploadModel();
  await backend.ensureDataset();
  const { serviceAccount } = await backend.ensureConnection();
  await backend.grantObjectViewer(serviceAccount);
  await backend.ensureObjectTable();
  await backend.ensureModel(artifact);
  const model = await backend.describeModel(artifact);
  await beforeTables?.();
  const tables = await backend.ensureResultTables(model);
  return { backend, model, version: artifact.version, tables };
}

const primaryKeys = (config: Parameters<typeof query>[0]) =>
  query<{ n: bigint }>(
    config,
    "SELECT count(*) AS n FROM duckdb_constraints() WHERE schema_name = 'objinfer_test' AND table_name = 'predictions' AND constraint_type = 'PRIMARY KEY'",
  );

test('an image deleted after listing goes to the errors table and the rest are predicted', async () => {
  const taskQueue = uniqueQueue('deleted');
  const fixture = await makeFixture({ labels: ['red', 'green', 'blue'], taskQueue, config: { batch: { size: 10, concurrency: 1 } } });
  const { backend, model, version } = await provisioned(fixture.config);
  const plan = await backend.planBatches(version, 'r1');
  expect(plan).toMatchObject({ pending: 3, batchCount: 1 });
  const victim = readdirSync(fixture.imagesDir).find((f) => f.startsWith('green'))!;
  await unlink(join(fixture.imagesDir, victim));
  const result = await backend.predictBatch({ modelVersion: version, model, slice: { index: 0, count: 1 }, runId: 'r1' });
  expect(result).toMatchObject({ predicted: 2, failed: 1, labelCounts: { red: 1, blue: 1 } });
  // Run twice: the same answer, nothing written again.
  const again = await backend.predictBatch({ modelVersion: version, model, slice: { index: 0, count: 1 }, runId: 'r1' });
  expect(again).toEqual(result);
  const count = await query<{ n: bigint }>(fixture.config, 'SELECT count(*) AS n FROM objinfer_test.predictions');
  expect(Number(count[0]!.n)).toBe(2);
});

test('a batch is decoded and written in chunks of two runs, and no ONNX Runtime run holds more than 32 images', async () => {
  const labels = Array.from({ length: 70 }, (_, i) => COLOR_LABELS[i % COLOR_LABELS.length]!);
  const fixture = await makeFixture({ labels, taskQueue: uniqueQueue('chunks'), config: { batch: { size: 100, concurrency: 1 } } });
  const { backend, model, version } = await provisioned(fixture.config);
  // InferenceSession is typed as a factory; its instances share the class's run.
  const runs = jest.spyOn((ort.InferenceSession as unknown as { prototype: ort.InferenceSession }).prototype, 'run');
  const statements = jest.spyOn(DuckDBConnection.prototype, 'run');
  try {
    const result = await backend.predictBatch({ modelVersion: version, model, slice: { index: 0, count: 1 }, runId: 'r1' });
    expect(result).toMatchObject({ predicted: 70, failed: 0 });
    // 70 images: two chunks of 35 (64 at most), each inferred in two even runs.
    const sizes = runs.mock.calls.map(([feeds]: [ort.InferenceSession.FeedsType, ...unknown[]]) => (Object.values(feeds)[0] as ort.Tensor).dims[0]);
    expect(sizes).toEqual([18, 17, 18, 17]);
    expect(statements.mock.calls.filter(([sql]) => sql === 'COMMIT')).toHaveLength(2);
  } finally {
    runs.mockRestore();
    statements.mockRestore();
  }
  const wrong = await query(fixture.config, `SELECT uri, label FROM objinfer_test.predictions WHERE NOT starts_with(parse_filename(uri), label || '-')`);
  expect(wrong).toEqual([]);
});

test("describing a model starts the worker's decoders, so the first batch does not wait for them to start", async () => {
  const fixture = await makeFixture({ labels: ['red'], taskQueue: uniqueQueue('decoders') });
  decoderPool().close();
  expect(decoderPool().decoders()).toEqual([]);
  await provisioned(fixture.config);
  expect(decoderPool().decoders()).toHaveLength(availableParallelism());
});

test('two attempts of one batch at once in one worker write each prediction once, with no index on the results table', async () => {
  const fixture = await makeFixture({
    labels: ['red', 'green', 'blue', 'red'],
    taskQueue: uniqueQueue('overlap'),
    config: { batch: { size: 10, concurrency: 1 } },
  });
  const { backend, model, version } = await provisioned(fixture.config);
  const request = { modelVersion: version, model, slice: { index: 0, count: 1 }, runId: 'r1' };
  const attempts = await Promise.all([backend.predictBatch(request), backend.predictBatch(request)]);
  for (const attempt of attempts) expect(attempt).toMatchObject({ predicted: 4, failed: 0 });
  const rows = await query<{ n: bigint; keys: bigint }>(
    fixture.config,
    'SELECT count(*) AS n, count(DISTINCT (uri, generation, model_version)) AS keys FROM objinfer_test.predictions',
  );
  expect(rows[0]).toEqual({ n: 4n, keys: 4n });
  // Every write would re-save a primary-key index whole (docs/benchmarks.md): the table has none.
  expect(Number((await primaryKeys(fixture.config))[0]!.n)).toBe(0);
});

test('a listing after files were deleted and added drops the deleted from the object table and adds the new, with their hashes', async () => {
  const fixture = await makeFixture({ labels: ['red', 'green', 'blue'], taskQueue: uniqueQueue('relist'), config: { batch: { size: 10, concurrency: 1 } } });
  const { backend } = await provisioned(fixture.config);
  const files = readdirSync(fixture.imagesDir).sort();
  await unlink(join(fixture.imagesDir, files[0]!));
  await unlink(join(fixture.imagesDir, files[1]!));
  await copyFile(join(fixture.imagesDir, files[2]!), join(fixture.imagesDir, 'copy.png'));
  const outcome = await backend.ensureObjectTable();
  expect(outcome).toMatchObject({ action: 'updated', detail: 'objinfer_test.images: 2 objects (1 new or changed, 2 gone)' });
  const rows = await query<{ uri: string; md5_hash: string; hashed: boolean }>(
    fixture.config,
    'SELECT uri, md5_hash, uri_hash_high = md5_number_lower(uri) AND uri_hash_low = md5_number_upper(uri) AS hashed FROM objinfer_test.images ORDER BY uri',
  );
  expect(rows.map((r) => r.uri.split('/').pop())).toEqual(['copy.png', files[2]]);
  expect(rows[0]!.md5_hash).toBe(rows[1]!.md5_hash);
  expect(rows.every((r) => r.hashed)).toBe(true);
});

test('a listing handed on two files at a time lists each object once (two patterns match some), hashes what changed and keeps the generation of unchanged bytes', async () => {
  const fixture = await makeFixture({
    labels: ['red', 'green', 'blue', 'red', 'green'],
    taskQueue: uniqueQueue('chunks'),
    config: { sourceUris: ['images/*', 'images/red-*'] },
  });
  const backend = realBackendFor(fixture.config);
  await backend.ensureDataset();
  await backend.grantObjectViewer((await backend.ensureConnection()).serviceAccount);
  const ctx = new LocalContext(fixture.config);
  const listInPairs = () => ensureObjectTable(ctx, 2);
  const md5 = (name: string) =>
    createHash('md5')
      .update(readFileSync(join(fixture.imagesDir, name)))
      .digest('base64');
  const mtimeUs = (name: string) => statSync(join(fixture.imagesDir, name), { bigint: true }).mtimeNs / 1000n;
  const table = async () =>
    new Map(
      (await query<{ uri: string; generation: bigint; md5_hash: string }>(fixture.config, 'SELECT uri, generation, md5_hash FROM objinfer_test.images')).map(
        (r) => [r.uri.split('/').pop()!, r],
      ),
    );
  const names = readdirSync(fixture.imagesDir).sort();
  const news: StepNews[] = [];
  const created = await listeningForWaits((n) => news.push(n), listInPairs);
  expect(created).toMatchObject({ action: 'created', detail: 'objinfer_test.images: 5 objects (5 new or changed, 0 gone)' });
  // What `objinfer run` shows while a big bucket is listed: the two red files are matched twice.
  expect(news).toEqual([
    ...[2, 4, 6, 7].map((n) => ({ doing: `listing: ${n} files matched so far` })),
    ...[0, 2, 4].map((n) => ({ doing: `reading new or changed files: ${n} of 5 done (5 objects listed)` })),
    { doing: 'writing 5 listed objects into objinfer_test.images' },
  ]);
  const first = await table();
  expect([...first.keys()].sort()).toEqual(names);
  for (const name of names) expect(first.get(name)).toMatchObject({ generation: mtimeUs(name), md5_hash: md5(name) });

  const [gone, chmodded, rewritten, copied] = names;
  await unlink(join(fixture.imagesDir, gone!));
  chmodSync(join(fixture.imagesDir, chmodded!), 0o600); // a new ctime, the same bytes
  const oldTimes = join(fixture.dir, 'old-times');
  writeFileSync(oldTimes, '');
  execFileSync('touch', ['-r', join(fixture.imagesDir, rewritten!), oldTimes]);
  await copyFile(join(fixture.imagesDir, copied!), join(fixture.imagesDir, rewritten!)); // new bytes under the old mtime
  execFileSync('touch', ['-r', oldTimes, join(fixture.imagesDir, rewritten!)]);
  await copyFile(join(fixture.imagesDir, copied!), join(fixture.imagesDir, 'extra.png'));
  expect(await listInPairs()).toMatchObject({ action: 'updated', detail: 'objinfer_test.images: 5 objects (2 new or changed, 1 gone)' });
  const second = await table();
  expect([...second.keys()].sort()).toEqual([...names.filter((n) => n !== gone), 'extra.png'].sort());
  expect(second.get(chmodded!)).toEqual(first.get(chmodded!));
  expect(second.get(rewritten!)).toMatchObject({ generation: first.get(rewritten!)!.generation + 1n, md5_hash: md5(copied!) });
  expect(second.get('extra.png')).toMatchObject({ generation: mtimeUs('extra.png'), md5_hash: md5(copied!) });
  expect(await listInPairs()).toMatchObject({ action: 'exists', detail: 'objinfer_test.images: 5 objects (0 new or changed, 0 gone)' });
  expect(await table()).toEqual(second);
});

test('what a listing is doing reaches whoever watches the run: its last report stands in the step heartbeat while the step goes on', async () => {
  const taskQueue = uniqueQueue('doing');
  const fixture = await makeFixture({ labels: ['red', 'green', 'blue'], taskQueue });
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  // The real listing, then held until the watcher has seen what it said last.
  const heldAfterListing = (config: Parameters<typeof realBackendFor>[0]) => {
    const backend = realBackendFor(config);
    const list = backend.ensureObjectTable;
    backend.ensureObjectTable = async () => {
      const outcome = await list();
      await released;
      return outcome;
    };
    return backend;
  };
  const last = 'ensureObjectTable: writing 3 listed objects into objinfer_test.images';
  const seen = new Set<string>();
  const summary = await withWorker(
    taskQueue,
    async () => {
      const { workflowId } = await startPipeline(client, fixture.config);
      return waitForResult(client, workflowId, {
        intervalMs: 50,
        onDoing: (what) => {
          if (what) seen.add(what);
          if (what === last) release(); // heartbeats are throttled: the newest arrives within the throttle interval
        },
      });
    },
    heldAfterListing,
  );
  expect(summary).toMatchObject({ predicted: 3 });
  const reported = [
    'ensureObjectTable: listing: 3 files matched so far',
    'ensureObjectTable: reading new or changed files: 0 of 3 done (3 objects listed)',
    last,
  ];
  expect([...seen].every((what) => reported.includes(what))).toBe(true);
  expect(seen.has(last)).toBe(true);
});

test('each batch does exactly the objects whose md5_number(uri) % k is its index: from the URI hashes the object table keeps, or without them in a table made before them', async () => {
  const labels: ColorLabel[] = ['red', 'green', 'blue', 'red', 'green', 'blue', 'red', 'green', 'blue'];
  const fixture = await makeFixture({ labels, taskQueue: uniqueQueue('slices'), config: { batch: { size: 2, concurrency: 1 } } });
  const { backend, model, version } = await provisioned(fixture.config);
  const warehouse = new Warehouse(fixture.config.local.warehouse);
  const hashes = () =>
    query<{ missing: bigint; wrong: bigint }>(
      fixture.config,
      `SELECT count(*) FILTER (WHERE uri_hash_high IS NULL OR uri_hash_low IS NULL) AS missing,
              count(*) FILTER (WHERE uri_hash_high <> md5_number_lower(uri) OR uri_hash_low <> md5_number_upper(uri)) AS wrong FROM objinfer_test.images`,
    );
  expect(await hashes()).toEqual([{ missing: 0n, wrong: 0n }]);
  const count = 4;
  const batch = (index: number) => backend.predictBatch({ modelVersion: version, model, slice: { index, count }, runId: `slice-${index}` });
  // A table made by an objinfer before the hashes, with a run already past its listing.
  await warehouse.use(async (db) => {
    await db.run('ALTER TABLE objinfer_test.images DROP COLUMN uri_hash_high');
    await db.run('ALTER TABLE objinfer_test.images DROP COLUMN uri_hash_low');
  });
  await batch(0);
  await batch(1);
  // The next listing adds them; rows that lack one hash their URIs.
  await backend.ensureObjectTable();
  expect(await hashes()).toEqual([{ missing: 0n, wrong: 0n }]);
  await warehouse.use((db) => db.run("UPDATE objinfer_test.images SET uri_hash_high = NULL WHERE uri LIKE '%green%'"));
  await batch(2);
  await batch(3);
  // DuckDB's own 128-bit remainder says which batch each object belongs to.
  const misplaced = await query<{ n: bigint; total: bigint }>(
    fixture.config,
    `SELECT count(*) FILTER (WHERE r.run_id <> 'slice-' || CAST(md5_number(r.uri) % ${count} AS VARCHAR)) AS n, count(*) AS total FROM objinfer_test.predictions r`,
  );
  expect(misplaced).toEqual([{ n: 0n, total: BigInt(labels.length) }]);
});

test('a results table made with a primary key by an earlier objinfer is rebuilt without it, its rows kept, and the run goes on', async () => {
  const fixture = await makeFixture({ labels: ['red', 'green'], taskQueue: uniqueQueue('rebuild'), config: { batch: { size: 10, concurrency: 1 } } });
  const earlier = async () => {
    await new Warehouse(fixture.config.local.warehouse).use(async (db) => {
      await db.run(`CREATE TABLE objinfer_test.predictions (
        uri VARCHAR NOT NULL, generation BIGINT NOT NULL, model_version VARCHAR NOT NULL,
        label VARCHAR NOT NULL, score DOUBLE NOT NULL, top_k ${TOP_K_TYPE} NOT NULL,
        probabilities FLOAT[], run_id VARCHAR NOT NULL, predicted_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (uri, generation, model_version))`);
      await db.run(
        `INSERT INTO objinfer_test.predictions VALUES ('file:///elsewhere/old.png', 7, 'v0', 'red', 0.9, [{'label': 'red', 'index': 0, 'score': 0.9}], NULL, 'r0', '2026-01-01T00:00:00Z')`,
      );
    });
  };
  const { backend, model, version, tables } = await provisioned(fixture.config, earlier);
  expect(tables).toContainEqual({
    step: 'table',
    action: 'updated',
    detail: expect.stringMatching(/^objinfer_test\.predictions \(rebuilt without its primary-key index/),
  });
  expect(Number((await primaryKeys(fixture.config))[0]!.n)).toBe(0);
  const kept = await query<{ uri: string; generation: bigint; run_id: string; top_k: unknown }>(
    fixture.config,
    'SELECT uri, generation, run_id, top_k FROM objinfer_test.predictions',
  );
  expect(kept).toEqual([{ uri: 'file:///elsewhere/old.png', generation: 7n, run_id: 'r0', top_k: [{ label: 'red', index: 0, score: 0.9 }] }]);
  await expect(backend.predictBatch({ modelVersion: version, model, slice: { index: 0, count: 1 }, runId: 'r1' })).resolves.toMatchObject({
    predicted: 2,
    failed: 0,
  });
  // A second provisioning finds the table as it is now.
  expect(await backend.ensureResultTables(model)).toContainEqual({ step: 'table', action: 'exists', detail: 'objinfer_test.predictions' });
});

test('the run is findable by its search attributes (also with objinfer list), with its config in the memo and summaries on its activities', async () => {
  const taskQueue = uniqueQueue('visibility');
  const fixture = await makeFixture({ labels: ['red', 'green', 'blue'], taskQueue });
  const { summary, metadata } = await withWorker(taskQueue, async () => {
    const { workflowId } = await startPipeline(client, fixture.config, { searchAttributes: true });
    const result = await waitForResult(client, workflowId);
    // Current details are answered by a query, so ask while the worker is up.
    return { summary: result, metadata: await client.workflow.getHandle(workflowId).query<{ currentDetails?: string }>('__temporal_workflow_metadata') };
  });
  expect(metadata.currentDetails).toBe(`**done**: 3 predicted, 0 failed, 0 already done (prediction version ${summary.modelVersion})`);
  const description = await client.workflow.getHandle(summary.workflowId).describe();
  const attributes = description.typedSearchAttributes;
  expect(attributes.get(SearchAttributes.backend)).toBe('local');
  expect(attributes.get(SearchAttributes.dataset)).toBe('objinfer_test');
  expect(attributes.get(SearchAttributes.project)).toBe('local');
  expect(attributes.get(SearchAttributes.pipeline)).toBe(fixture.config.name);
  expect(attributes.get(SearchAttributes.model)).toBe('color_classifier');
  expect(attributes.get(SearchAttributes.stage)).toBe('done');
  expect(attributes.get(SearchAttributes.imagesDone)).toBe(3);
  expect(description.memo?.config).toMatchObject({ backend: 'local', model: 'color_classifier (ONNX)' });

  const history = await client.workflow.getHandle(summary.workflowId).fetchHistory();
  const summaries = (history.events ?? [])
    .filter((e) => e.activityTaskScheduledEventAttributes && e.userMetadata?.summary)
    .map((e) => defaultPayloadConverter.fromPayload<string>(e.userMetadata!.summary!));
  expect(summaries).toEqual(
    expect.arrayContaining(['provision: dataset objinfer_test', 'provision: object table images', 'plan: count pending images', 'infer: batch 1/1']),
  );

  const list = spawnSync(CLI, ['list', '--model', 'color_classifier', '--stage', 'done', '--status', 'completed', '-n', '500'], {
    env: { ...process.env, TEMPORAL_ADDRESS: testServer().address },
    encoding: 'utf8',
  });
  expect(list.status).toBe(0);
  expect(list.stdout).toContain(summary.workflowId);
  expect(list.stdout).toMatch(new RegExp(`${summary.workflowId}\\s+run\\s+COMPLETED\\s+done\\s+3\\s+objinfer_test\\s+color_classifier`));
});

test('a long run continues as new when Temporal suggests it, and still writes every row once', async () => {
  const taskQueue = uniqueQueue('continue');
  const labels = [...everyColourTwice, ...everyColourTwice]; // 32 images, one per batch
  const fixture = await makeFixture({ labels, taskQueue, config: { batch: { size: 1, concurrency: 2 } } });
  const summary = await withWorker(taskQueue, async () => {
    const { workflowId } = await startPipeline(client, fixture.config);
    return waitForResult(client, workflowId);
  });
  const firstRun = await client.workflow.getHandle(summary.workflowId, summary.runId).describe();
  expect(firstRun.status.name).toBe('CONTINUED_AS_NEW');
  expect(summary).toMatchObject({ predicted: 32, failed: 0, batches: 32, objectsSeen: 32 });
  expect(summary.provisioned.length).toBeGreaterThan(0); // carried over from the first run
  const rows = await query<{ uri: string; n: bigint }>(fixture.config, 'SELECT uri, count(*) AS n FROM objinfer_test.predictions GROUP BY uri');
  expect(rows).toHaveLength(32);
  expect(rows.every((r) => Number(r.n) === 1)).toBe(true);
});

test('cleanup removes what the pipeline created and keeps the data until asked (local backend)', async () => {
  const taskQueue = uniqueQueue('cleanup');
  const fixture = await makeFixture({ labels: ['red', 'blue'], taskQueue });
  const tables = async () =>
    (
      await query<{ table_name: string }>(fixture.config, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'objinfer_test' ORDER BY 1")
    ).map((r) => r.table_name);
  await withWorker(taskQueue, async () => {
    const { workflowId } = await startPipeline(client, fixture.config);
    await waitForResult(client, workflowId);
  });
  expect(await tables()).toEqual(['color_classifier_labels', 'images', 'predictions', 'predictions_errors']);

  const kept = await withWorker(taskQueue, () => cleanupPipeline(client, fixture.config, { deleteData: false }));
  expect(
    kept
      .filter((o) => o.action === 'removed')
      .map((o) => o.step)
      .sort(),
  ).toEqual(['grant', 'grant', 'model', 'model files', 'table', 'table']);
  expect(await tables()).toEqual(['predictions', 'predictions_errors']);
  expect(await query(fixture.config, 'SELECT * FROM _objinfer.grants')).toEqual([]);
  expect(existsSync(join(fixture.config.local.storage, fixture.config.bucket, 'models'))).toBe(true);
  expect(readdirSync(join(fixture.config.local.storage, fixture.config.bucket, 'models'))).toEqual([]);

  const all = await withWorker(taskQueue, () => cleanupPipeline(client, fixture.config, { deleteData: true }));
  expect(
    all
      .filter((o) => o.action === 'removed')
      .map((o) => o.step)
      .sort(),
  ).toEqual(['bucket', 'connection', 'dataset', 'table', 'table']);
  expect(await tables()).toEqual([]);
  expect(existsSync(join(fixture.config.local.storage, fixture.config.bucket))).toBe(false);
  expect(readdirSync(fixture.imagesDir)).toHaveLength(2); // the images were never objinfer's
});

test('objinfer plan prints every step in order and changes nothing', async () => {
  const fixture = await makeFixture({ labels: ['red'], taskQueue: uniqueQueue('plan') });
  const result = spawnSync(CLI, ['plan', '--config', fixture.configFile], {
    encoding: 'utf8',
    env: { ...process.env, TEMPORAL_ADDRESS: testServer().address },
  });
  expect(result.status).toBe(0);
  const steps = [...result.stdout.matchAll(/^\s*\d+\. (.+)$/gm)].map((m) => m[1]);
  expect(steps).toEqual([
    'preflight',
    'dataset',
    'connection',
    'bucket',
    'grant',
    'upload model',
    'object table',
    'model',
    'describe model',
    'tables',
    'plan',
    'infer',
  ]);
  expect(existsSync(fixture.config.local.warehouse)).toBe(false);
});
