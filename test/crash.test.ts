/**
 * Workers as separate processes (`objinfer worker`), killed without warning mid-run,
 * and the CLI reading results while a worker writes them.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { loadConfig } from '../src/config';
import { join } from 'node:path';
import { WorkflowFailedError, type Client, type Connection } from '@temporalio/client';
import { CancelledFailure } from '@temporalio/common';
import { cancelPipeline, getProgress, startPipeline, waitForResult } from '../src/client';
import sharp from 'sharp';
import { COLOR_LABELS, COLOR_PROTOTYPES } from '../src/models/colorClassifier';
import { CLI } from './support/paths';
import { makeFixture, query, testClient, testServer, uniqueQueue, type Fixture } from './support/pipeline';

let client: Client;
let connection: Connection;
const workers: ChildProcess[] = [];

beforeAll(async () => {
  ({ client, connection } = await testClient());
});
afterAll(async () => {
  for (const worker of workers) worker.kill('SIGKILL');
  await connection.close();
});

function cliEnv(fixture: Fixture) {
  return { ...process.env, TEMPORAL_ADDRESS: testServer().address, OBJINFER_HOME: join(fixture.dir, 'state') };
}

function startWorkerProcess(fixture: Fixture, taskQueue: string, extraArgs: string[] = []): ChildProcess {
  const child = spawn(CLI, ['worker', '--task-queue', taskQueue, ...extraArgs], { env: cliEnv(fixture), stdio: ['ignore', 'ignore', 'pipe'] });
  workers.push(child);
  return child;
}

/** Large JPEGs (made natively by sharp) in small batches, so a run lasts long enough to interrupt. */
async function slowFixture(taskQueue: string, count: number, batchSize = 2): Promise<Fixture> {
  const fixture = await makeFixture({ labels: [], taskQueue, config: { batch: { size: batchSize, concurrency: 1, heartbeatTimeout: '3s' } } });
  for (let i = 0; i < count; i++) {
    const label = COLOR_LABELS[i % COLOR_LABELS.length]!;
    const [r, g, b] = COLOR_PROTOTYPES[label].map((c) => c * 215 + 20);
    const jpeg = await sharp({ create: { width: 1500, height: 1500, channels: 3, background: { r: r!, g: g!, b: b! } } })
      .jpeg()
      .toBuffer();
    await writeFile(join(fixture.imagesDir, `${label}-${String(i).padStart(3, '0')}.jpg`), jpeg);
  }
  return fixture;
}

async function until(condition: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

const status = async (workflowId: string) => (await client.workflow.getHandle(workflowId).describe()).status.name;

test('a worker killed mid-run is replaced and the run completes with no duplicate and no missing row', async () => {
  const taskQueue = uniqueQueue('crash');
  const count = 40;
  const fixture = await slowFixture(taskQueue, count);
  const first = startWorkerProcess(fixture, taskQueue);
  const { workflowId } = await startPipeline(client, fixture.config);
  await until(async () => ((await getProgress(client, workflowId).catch(() => undefined))?.batchesDone ?? 0) >= 3);

  first.kill('SIGKILL');
  await new Promise((r) => first.once('exit', r));
  expect(await status(workflowId)).toBe('RUNNING');
  const partial = await query<{ n: bigint }>(fixture.config, 'SELECT count(*) AS n FROM objinfer_test.predictions');
  expect(Number(partial[0]!.n)).toBeLessThan(count);

  startWorkerProcess(fixture, taskQueue);
  const summary = await waitForResult(client, workflowId);

  const rows = await query<{ uri: string; n: bigint }>(fixture.config, 'SELECT uri, count(*) AS n FROM objinfer_test.predictions GROUP BY uri');
  expect(rows).toHaveLength(count);
  expect(rows.every((r) => Number(r.n) === 1)).toBe(true);
  const wrong = await query(fixture.config, `SELECT uri, label FROM objinfer_test.predictions WHERE NOT starts_with(parse_filename(uri), label || '-')`);
  expect(wrong).toEqual([]);
  expect(summary).toMatchObject({ predicted: count, failed: 0, objectsSeen: count });
}, 180_000);

test('the CLI reads results while a worker is writing them', async () => {
  const taskQueue = uniqueQueue('reader');
  const fixture = await slowFixture(taskQueue, 40, 1); // 40 batches: seconds of writing to read during
  startWorkerProcess(fixture, taskQueue);
  const { workflowId } = await startPipeline(client, fixture.config);
  // An image written, not a batch done: batches are hash buckets, and the first to finish may hold none.
  await until(async () => ((await getProgress(client, workflowId).catch(() => undefined))?.imagesDone ?? 0) >= 1);

  const readsWhileRunning: number[] = [];
  while ((await status(workflowId)) === 'RUNNING') {
    const read = spawnSync(CLI, ['results', '--config', fixture.configFile, '-o', 'json', '--limit', '1000'], {
      env: cliEnv(fixture),
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(read.stderr).toBe('');
    expect(read.status).toBe(0);
    if ((await status(workflowId)) === 'RUNNING') readsWhileRunning.push((JSON.parse(read.stdout) as unknown[]).length);
  }
  expect(readsWhileRunning.length).toBeGreaterThan(0);
  expect(readsWhileRunning[0]).toBeGreaterThan(0);
  // Reads saw the table part-written, never shrinking: readers get in between the writes.
  expect(readsWhileRunning.some((n) => n > 0 && n < 40)).toBe(true);
  expect(readsWhileRunning).toEqual([...readsWhileRunning].sort((a, b) => a - b));
  expect((await waitForResult(client, workflowId)).predicted).toBe(40);
}, 180_000);

test('cancelling a run stops its batches and writes nothing more', async () => {
  const taskQueue = uniqueQueue('cancel');
  const count = 40;
  const fixture = await slowFixture(taskQueue, count);
  const worker = startWorkerProcess(fixture, taskQueue);
  const { workflowId } = await startPipeline(client, fixture.config);
  await until(async () => ((await getProgress(client, workflowId).catch(() => undefined))?.batchesDone ?? 0) >= 2);

  await cancelPipeline(client, workflowId);
  const outcome = await waitForResult(client, workflowId).then(
    () => 'completed',
    (error: unknown) => error,
  );
  expect(outcome).toBeInstanceOf(WorkflowFailedError);
  expect((outcome as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
  expect(await status(workflowId)).toBe('CANCELLED');

  const rowsAt = async () => Number((await query<{ n: bigint }>(fixture.config, 'SELECT count(*) AS n FROM objinfer_test.predictions'))[0]!.n);
  const afterCancel = await rowsAt();
  // Stop the worker and wait for it to be gone: whatever it wrote after the run ended shows now.
  const exited = new Promise((gone) => worker.once('exit', gone));
  worker.kill('SIGTERM');
  await exited;
  expect(await rowsAt()).toBe(afterCancel); // no batch went on writing
  expect(afterCancel).toBeLessThan(count);
  // Every batch still under way when the workflow saw the cancel was asked to stop. A batch
  // can finish between the cancel request and the workflow task that handles it (the history
  // of a run where this happened: ActivityTaskScheduled, WorkflowExecutionCancelRequested,
  // ActivityTaskCompleted, WorkflowTaskStarted, WorkflowExecutionCanceled): nothing to stop then.
  const events = (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  const cancelAt = events.findIndex((e) => e.workflowExecutionCancelRequestedEventAttributes);
  expect(cancelAt).toBeGreaterThan(0);
  const handledAt = events.findIndex((e, i) => i > cancelAt && e.workflowTaskStartedEventAttributes);
  const ended = (e: (typeof events)[number]) =>
    e.activityTaskCompletedEventAttributes ??
    e.activityTaskFailedEventAttributes ??
    e.activityTaskTimedOutEventAttributes ??
    e.activityTaskCanceledEventAttributes;
  const endedBefore = new Set(events.slice(0, handledAt).flatMap((e) => (ended(e) ? [String(ended(e)!.scheduledEventId)] : [])));
  const underWay = events
    .slice(0, cancelAt)
    .filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'predictBatch' && !endedBefore.has(String(e.eventId)))
    .map((e) => String(e.eventId));
  const askedToStop = events
    .slice(handledAt)
    .flatMap((e) => (e.activityTaskCancelRequestedEventAttributes ? [String(e.activityTaskCancelRequestedEventAttributes.scheduledEventId)] : []));
  expect(askedToStop.sort()).toEqual(underWay.sort());
}, 180_000);

test('two worker processes on one task queue share the batches; every row is still written once', async () => {
  const taskQueue = uniqueQueue('scale-out');
  const count = 24;
  const fixture = await slowFixture(taskQueue, count, 2); // 12 batches, two at a time
  await writeFile(fixture.configFile, (await readFile(fixture.configFile, 'utf8')).replace('concurrency: 1', 'concurrency: 2'));
  // One activity at a time each: while one worker runs a batch, only the other can take the next.
  const workers = [
    startWorkerProcess(fixture, taskQueue, ['--max-concurrent-activities', '1']),
    startWorkerProcess(fixture, taskQueue, ['--max-concurrent-activities', '1']),
  ];
  const { workflowId } = await startPipeline(client, loadConfig(fixture.configFile));
  const summary = await waitForResult(client, workflowId);
  expect(summary).toMatchObject({ predicted: count, failed: 0, batches: 12 });

  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const batchEvents = new Set(
    (history.events ?? []).filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'predictBatch').map((e) => String(e.eventId)),
  );
  const identities = (history.events ?? [])
    .filter((e) => e.activityTaskStartedEventAttributes && batchEvents.has(String(e.activityTaskStartedEventAttributes.scheduledEventId)))
    .map((e) => e.activityTaskStartedEventAttributes!.identity);
  expect(identities).toHaveLength(12);
  expect(new Set(identities)).toEqual(new Set(workers.map((w) => expect.stringMatching(new RegExp(`^${w.pid}@`)))));
  const rows = await query<{ uri: string; n: bigint }>(fixture.config, 'SELECT uri, count(*) AS n FROM objinfer_test.predictions GROUP BY uri');
  expect(rows).toHaveLength(count);
  expect(rows.every((r) => Number(r.n) === 1)).toBe(true);
}, 180_000);
