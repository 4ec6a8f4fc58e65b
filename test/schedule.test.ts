/** Scheduled re-inference on the real dev server (the time-skipping server has no Schedules). */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { Client, Connection } from '@temporalio/client';
import { startPipeline, waitForResult } from '../src/client';
import {
  backfillSchedule,
  createSchedule,
  deleteSchedule,
  describeSchedule,
  listSchedules,
  ScheduleSpecError,
  triggerSchedule,
  type ScheduleRequest,
} from '../src/schedules';
import { Ids, type PipelineSummary, type ScheduledOutcome } from '../src/workflows/contract';
import { CLI } from './support/paths';
import { activityStarts, makeFixture, testClient, testServer, uniqueQueue, withWorker } from './support/pipeline';

let client: Client;
let connection: Connection;
const created: string[] = [];

beforeAll(async () => {
  ({ client, connection } = await testClient());
});
afterAll(async () => {
  for (const id of created)
    await client.schedule
      .getHandle(id)
      .delete()
      .catch(() => undefined);
  await connection.close();
});

const hourly: ScheduleRequest = { every: '1h' };

async function eventually<T>(probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The workflow IDs the schedule has started so far. */
async function startedRuns(scheduleId: string): Promise<string[]> {
  const { info } = await client.schedule.getHandle(scheduleId).describe();
  return info.recentActions.map((a) => a.action.workflow.workflowId);
}

/** The summary of the pipeline run the schedule's n-th slot ran (a slot runs it as a child). */
async function nthRunResult(scheduleId: string, n: number): Promise<PipelineSummary> {
  const workflowId = await eventually(async () => (await startedRuns(scheduleId))[n]);
  const outcome = (await client.workflow.getHandle(workflowId).result()) as ScheduledOutcome;
  if (!outcome.ran) throw new Error(`slot ${n} stood aside: ${outcome.reason}`);
  return outcome.summary;
}

test('create, then trigger: the run processes only new images; a second trigger infers nothing', async () => {
  const taskQueue = uniqueQueue('schedule');
  const fixture = await makeFixture({ labels: ['red', 'green', 'blue'], taskQueue });
  await withWorker(taskQueue, async () => {
    const first = await startPipeline(client, fixture.config);
    expect((await waitForResult(client, first.workflowId)).predicted).toBe(3);

    await fixture.addImage('yellow');
    await fixture.addImage('black');
    const { scheduleId, outcome } = await createSchedule(client, fixture.config, hourly);
    created.push(scheduleId);
    expect(outcome).toBe('created');

    await triggerSchedule(client, scheduleId);
    const scheduled = await nthRunResult(scheduleId, 0);
    expect(scheduled).toMatchObject({ predicted: 2, alreadyDone: 3, objectsSeen: 5 });
    expect(scheduled.labelCounts).toEqual({ yellow: 1, black: 1 });

    await triggerSchedule(client, scheduleId);
    const idle = await nthRunResult(scheduleId, 1);
    expect(idle).toMatchObject({ predicted: 0, alreadyDone: 5, batches: 0 });
    const starts = await activityStarts(client, idle.workflowId);
    expect(starts.some((s) => s.activityType === 'predictBatch')).toBe(false);

    const report = await describeSchedule(client, scheduleId);
    expect(report.recentRuns.map((r) => [r.status, r.outcome, r.summary?.predicted])).toEqual([
      ['COMPLETED', 'ran', 2],
      ['COMPLETED', 'ran', 0],
    ]);
    expect(report.nextActionTimes).toHaveLength(5);
    expect(report.spec).toBe('every 1h');
  });
});

test('create is idempotent: the same spec is a no-op, a different spec asks for update', async () => {
  const fixture = await makeFixture({ labels: ['red'], taskQueue: uniqueQueue('idempotent') });
  const first = await createSchedule(client, fixture.config, { cron: '0 * * * *' });
  created.push(first.scheduleId);
  expect((await describeSchedule(client, first.scheduleId)).spec).toBe('cron "0 * * * *"');
  expect((await createSchedule(client, fixture.config, { cron: '0 * * * *' })).outcome).toBe('unchanged');
  await expect(createSchedule(client, fixture.config, { cron: '30 * * * *' })).rejects.toThrow(/objinfer schedule update/);
  expect((await listSchedules(client)).filter((s) => s.scheduleId === first.scheduleId)).toHaveLength(1);
});

test('pause and unpause show in describe, with the note; delete removes the schedule', async () => {
  const fixture = await makeFixture({ labels: ['red'], taskQueue: uniqueQueue('pause') });
  const { scheduleId } = await createSchedule(client, fixture.config, hourly);
  const handle = client.schedule.getHandle(scheduleId);
  await handle.pause('maintenance window');
  expect(await describeSchedule(client, scheduleId)).toMatchObject({ paused: true, note: 'maintenance window' });
  await handle.unpause('back');
  expect(await describeSchedule(client, scheduleId)).toMatchObject({ paused: false, note: 'back' });
  expect(await deleteSchedule(client, scheduleId)).toEqual({ listed: false });
  expect((await listSchedules(client)).map((s) => s.scheduleId)).not.toContain(scheduleId);
  await expect(handle.describe()).rejects.toThrow();
});

test('a trigger while a run is still going does not start a second run (overlap: skip)', async () => {
  const taskQueue = uniqueQueue('overlap'); // no worker polls it: the first run stays running
  const fixture = await makeFixture({ labels: ['red'], taskQueue });
  const { scheduleId } = await createSchedule(client, fixture.config, hourly);
  created.push(scheduleId);
  await triggerSchedule(client, scheduleId);
  const [running] = await eventually(async () => ((await startedRuns(scheduleId)).length ? startedRuns(scheduleId) : undefined));
  await triggerSchedule(client, scheduleId);
  await triggerSchedule(client, scheduleId);
  const info = await eventually(async () => {
    const described = (await client.schedule.getHandle(scheduleId).describe()).info;
    return described.numActionsSkippedOverlap >= 2 ? described : undefined;
  });
  expect(info.recentActions.map((a) => a.action.workflow.workflowId)).toEqual([running]);
  await client.workflow.getHandle(running!).terminate('test over');
});

describe('bad schedule input creates nothing', () => {
  test.each([
    [{ cron: 'every hour' }, /--cron: "every hour" is not a cron expression/],
    [{ every: 'soon' }, /--every: "soon" is not a positive duration/],
    [{ cron: '0 * * * *', timezone: 'Mars/Olympus' }, /--timezone: "Mars\/Olympus" is not an IANA time zone/],
    [{}, /give exactly one of --cron EXPR or --every DURATION/],
  ])('%j', async (request, message) => {
    const fixture = await makeFixture({ labels: ['red'], taskQueue: uniqueQueue('bad') });
    await expect(createSchedule(client, fixture.config, request as ScheduleRequest)).rejects.toThrow(ScheduleSpecError);
    await expect(createSchedule(client, fixture.config, request as ScheduleRequest)).rejects.toThrow(message);
    expect((await listSchedules(client)).map((s) => s.scheduleId)).not.toContain(Ids.schedule(fixture.config.name));
  });

  test('the CLI exits 2 with one line naming the flag', async () => {
    const fixture = await makeFixture({ labels: ['red'], taskQueue: uniqueQueue('badcli') });
    const result = spawnSync(CLI, ['schedule', 'create', '--config', fixture.configFile, '--cron', '61 * *'], {
      env: { ...process.env, TEMPORAL_ADDRESS: testServer().address, OBJINFER_HOME: join(fixture.dir, 'state') },
      encoding: 'utf8',
    });
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/schedule error: --cron: "61 \* \*" is not a cron expression/);
    expect((await listSchedules(client)).map((s) => s.scheduleId)).not.toContain(Ids.schedule(fixture.config.name));
  });

  test('a cron the server refuses is reported and creates nothing', async () => {
    const fixture = await makeFixture({ labels: ['red'], taskQueue: uniqueQueue('badserver') });
    const attempt = createSchedule(client, fixture.config, { cron: '99 * * * *' });
    await expect(attempt).rejects.toThrow(ScheduleSpecError);
    await expect(attempt).rejects.toThrow(/--cron: the server refused the schedule: Minute is not in range/);
    expect((await listSchedules(client)).map((s) => s.scheduleId)).not.toContain(Ids.schedule(fixture.config.name));
  });
});

test('backfill runs each missed slot in turn; only the first finds new images', async () => {
  const taskQueue = uniqueQueue('backfill');
  const fixture = await makeFixture({ labels: ['red', 'blue'], taskQueue });
  const { scheduleId } = await createSchedule(client, fixture.config, hourly);
  created.push(scheduleId);
  await withWorker(taskQueue, async () => {
    await backfillSchedule(client, scheduleId, new Date('2026-01-01T00:00:00Z'), new Date('2026-01-01T02:30:00Z'));
    const summaries = [await nthRunResult(scheduleId, 0), await nthRunResult(scheduleId, 1), await nthRunResult(scheduleId, 2)];
    expect(summaries.map((s) => s.predicted)).toEqual([2, 0, 0]);
  });
});

test('with no worker: create says a worker is needed and none polls; list and status show the waiting slot', async () => {
  const fixture = await makeFixture({ labels: ['red'], taskQueue: uniqueQueue('no-worker') });
  const queue = fixture.config.temporal.taskQueue;
  const cli = (args: string[]) =>
    spawnSync(CLI, args, { env: { ...process.env, TEMPORAL_ADDRESS: testServer().address, OBJINFER_HOME: join(fixture.dir, 'state') }, encoding: 'utf8' });
  const create = cli(['schedule', 'create', '--config', fixture.configFile, '--every', '1h']);
  created.push(Ids.schedule(fixture.config.name));
  expect(create.status).toBe(0);
  expect(create.stderr).toContain(
    `each scheduled run needs a worker polling task queue ${queue} (\`objinfer worker --task-queue ${queue}\`, kept running): none is polling now`,
  );
  await triggerSchedule(client, Ids.schedule(fixture.config.name));
  const slot = await eventually(async () => (await startedRuns(Ids.schedule(fixture.config.name)))[0]);
  expect(slot).toMatch(new RegExp(`^objinfer-${fixture.config.name}-scheduled-`));
  const listed = await eventually(async () => {
    const rows = JSON.parse(cli(['list', '-o', 'json', '-n', '200']).stdout) as { workflow: string; kind: string; status: string }[];
    return rows.find((r) => r.workflow === slot);
  });
  expect(listed).toMatchObject({ kind: 'scheduled slot', status: 'RUNNING' });
  const status = cli(['status', fixture.config.name]);
  expect(status.status).toBe(0);
  expect(status.stdout).toMatch(new RegExp(`scheduled slot ${slot} \\(started .*\\) has not started its run: no worker polls task queue ${queue}`));
  await client.workflow.getHandle(slot).terminate('test over');
});
