/**
 * Control of a running pipeline (issue 33 §2) on a real dev server with real activities: the
 * control update pauses it (batches in flight finish, none start), changes how many batches run
 * at once, resumes it, stops it at a budget of images; a bad change is refused by the validator
 * and leaves nothing in history.
 */
import { spawnSync } from 'node:child_process';
import type { Client, Connection } from '@temporalio/client';
import { controlPipeline, ControlRefused, getProgress, startPipeline, waitForResult, workersPolling } from '../src/client';
import type { ColorLabel } from '../src/models/colorClassifier';
import { controlUpdate } from '../src/workflows/contract';
import { CLI } from './support/paths';
import { activityStarts, makeFixture, testClient, testServer, uniqueQueue, withWorker } from './support/pipeline';

let connection: Connection;
let client: Client;

beforeAll(async () => {
  ({ client, connection } = await testClient());
});
afterAll(() => connection.close());

async function until<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A control change needs a worker to run the workflow's task: wait until the server lists this test's as polling. */
const polled = (taskQueue: string) =>
  until(
    () => workersPolling(client, taskQueue),
    (p) => p.workflowPollers > 0 && p.activityPollers > 0,
  );

/** The history's events of a kind, and the most predictBatch activities ever pending at once. */
async function historyOf(workflowId: string): Promise<{ updatesAccepted: number; updatesRejected: number; mostBatchesAtOnce: number }> {
  const events = (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  const batches = new Set<string>();
  let pending = 0;
  let most = 0;
  let updatesAccepted = 0;
  for (const event of events) {
    if (event.workflowExecutionUpdateAcceptedEventAttributes) updatesAccepted++;
    const scheduled = event.activityTaskScheduledEventAttributes;
    if (scheduled?.activityType?.name === 'predictBatch') {
      batches.add(String(event.eventId));
      most = Math.max(most, ++pending);
    }
    const closed =
      event.activityTaskCompletedEventAttributes ??
      event.activityTaskFailedEventAttributes ??
      event.activityTaskTimedOutEventAttributes ??
      event.activityTaskCanceledEventAttributes;
    if (closed && batches.has(String(closed.scheduledEventId))) pending--;
  }
  return { updatesAccepted, updatesRejected: events.filter((e) => e.workflowExecutionUpdateRejectedEventAttributes).length, mostBatchesAtOnce: most };
}

test('paused before its first batch, a run starts none; set changes how many run at once; resume finishes it', async () => {
  const taskQueue = uniqueQueue('control');
  const fixture = await makeFixture({ labels: ['red', 'green', 'blue', 'red', 'green', 'blue'], taskQueue, config: { batch: { size: 1, concurrency: 1 } } });
  // Sent before any worker polls, the pause reaches the run with its first workflow task, before any step.
  // (controlPipeline itself refuses to wait for a worker that is not there.)
  const { workflowId } = await startPipeline(client, fixture.config);
  const pausing = client.workflow.getHandle(workflowId).executeUpdate(controlUpdate, { args: [{ paused: true, note: 'maintenance window' }] });
  const summary = await withWorker(taskQueue, async () => {
    expect(await pausing).toEqual({ paused: true, concurrency: 1, note: 'maintenance window' });
    await polled(taskQueue);

    const atInfer = await until(
      () => getProgress(client, workflowId),
      (p) => p.stage !== 'preflight' && p.stage !== 'provision' && p.stage !== 'plan',
    );
    expect(atInfer).toMatchObject({ stage: 'infer', batchesDone: 0, batchesTotal: 6, control: { paused: true } });
    // Batches start in the workflow task that enters infer: none is pending, none has run.
    expect((await client.workflow.getHandle(workflowId).describe()).raw.pendingActivities ?? []).toHaveLength(0);

    for (const bad of [
      { concurrency: 0 },
      { concurrency: 2.5 },
      { concurrency: 65 },
      { maxImages: -1 },
      { paused: 'yes' as unknown as boolean },
      { batchSize: 3 } as never,
    ]) {
      const refusal = await controlPipeline(client, workflowId, bad).catch((error: unknown) => error);
      expect(refusal).toBeInstanceOf(ControlRefused);
      expect((refusal as ControlRefused).message).toMatch(
        /refused the change: (concurrency must be a whole number from 1 to 64|maxImages must be a whole number of at least 1|paused must be true or false|unknown field)/,
      );
    }

    expect((await controlPipeline(client, workflowId, { concurrency: 3 })).state).toEqual({ paused: true, concurrency: 3, note: 'maintenance window' });
    expect((await getProgress(client, workflowId)).batchesDone).toBe(0);
    expect((await controlPipeline(client, workflowId, { paused: false, note: 'back' })).state).toEqual({ paused: false, concurrency: 3, note: 'back' });
    return waitForResult(client, workflowId);
  });

  expect(summary).toMatchObject({ predicted: 6, failed: 0 });
  const history = await historyOf(workflowId);
  expect(history.updatesAccepted).toBe(3); // pause, set, resume: the six refused never reached history
  expect(history.updatesRejected).toBe(0);
  expect(history.mostBatchesAtOnce).toBe(3); // batch.concurrency is 1: the change took
});

test('a budget of images stops the run after the batch that reaches it, the rest left pending; the next run predicts the rest', async () => {
  const taskQueue = uniqueQueue('budget');
  const fixture = await makeFixture({ labels: ['red', 'green', 'blue', 'red', 'green', 'blue'], taskQueue, config: { batch: { size: 1, concurrency: 1 } } });
  const { workflowId } = await startPipeline(client, fixture.config);
  // Paused before any batch (as above), given the budget, then resumed: which batch reaches it does not depend on timing.
  const pausing = client.workflow.getHandle(workflowId).executeUpdate(controlUpdate, { args: [{ paused: true }] });
  const [first, second] = await withWorker(taskQueue, async () => {
    await pausing;
    await polled(taskQueue);
    await until(
      () => getProgress(client, workflowId),
      (p) => p.stage === 'infer',
    );
    expect((await controlPipeline(client, workflowId, { maxImages: 2 })).state).toMatchObject({ paused: true, concurrency: 1, maxImages: 2 });
    await controlPipeline(client, workflowId, { paused: false });
    const stopped = await waitForResult(client, workflowId);
    const next = await startPipeline(client, fixture.config);
    return [stopped, await waitForResult(client, next.workflowId)];
  });
  // Local batches are hash buckets of uneven size: the run stops after the batch that reaches the budget.
  const batchesRun = (await activityStarts(client, workflowId, first.runId)).filter((a) => a.activityType === 'predictBatch').length;
  expect(first.predicted).toBeGreaterThanOrEqual(2);
  expect(batchesRun).toBeLessThan(6);
  expect(first).toMatchObject({ failed: 0, stoppedAtBudget: { maxImages: 2, leftPending: 6 - first.predicted } });
  expect(second).toMatchObject({ predicted: 6 - first.predicted, alreadyDone: first.predicted });
  expect(second.stoppedAtBudget).toBeUndefined(); // a budget is the run's, not the pipeline's
  const refusal = await controlPipeline(client, workflowId, { maxImages: 0 }).catch((error: unknown) => error);
  expect((refusal as Error).message).toMatch(/is completed, not running/);
});

test('the CLI: pause on a run that is not running exits 2 saying so; set refuses a concurrency that is not a whole number', async () => {
  const taskQueue = uniqueQueue('control-cli');
  const fixture = await makeFixture({ labels: ['red'], taskQueue });
  await withWorker(taskQueue, async () => {
    const { workflowId } = await startPipeline(client, fixture.config);
    await waitForResult(client, workflowId);
  });
  const env = { ...process.env, TEMPORAL_ADDRESS: testServer().address };
  const pause = spawnSync(CLI, ['pause', fixture.config.name], { env, encoding: 'utf8', timeout: 60_000 });
  expect(pause.status).toBe(2);
  expect(pause.stderr).toMatch(/objinfer-test-\w+ is completed, not running: nothing to change/);
  const set = spawnSync(CLI, ['set', fixture.config.name, '--concurrency', 'lots'], { env, encoding: 'utf8', timeout: 60_000 });
  expect(set.status).toBe(2);
  expect(set.stderr).toMatch(/--concurrency.*must be a positive whole number/);
});

test('objinfer run --max-images N starts a run with that budget; the summary says what it left pending', async () => {
  const labels: ColorLabel[] = ['red', 'green', 'blue', 'cyan'];
  const fixture = await makeFixture({ labels, taskQueue: uniqueQueue('run-budget'), config: { batch: { size: 1, concurrency: 1 } } });
  const env = { ...process.env, TEMPORAL_ADDRESS: testServer().address };
  const run = (...extra: string[]) =>
    spawnSync(CLI, ['run', '--config', fixture.configFile, '-o', 'json', ...extra], { env, encoding: 'utf8', timeout: 120_000 });
  const first = run('--max-images', '1');
  expect(first.status).toBe(0);
  const stopped = JSON.parse(first.stdout) as { predicted: number; stoppedAtBudget: { maxImages: number; leftPending: number } };
  expect(stopped.predicted).toBeGreaterThanOrEqual(1);
  expect(stopped.stoppedAtBudget).toEqual({ maxImages: 1, leftPending: 4 - stopped.predicted });
  expect(stopped.stoppedAtBudget.leftPending).toBeGreaterThan(0);
  const rest = JSON.parse(run().stdout) as { predicted: number; stoppedAtBudget: unknown };
  expect(rest).toMatchObject({ predicted: 4 - stopped.predicted, stoppedAtBudget: null });
});
