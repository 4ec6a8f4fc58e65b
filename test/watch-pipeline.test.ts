/**
 * `objinfer watch` on the local backend, on the real dev server: file-system events reach a
 * running watch, which predicts each micro-batch once; changes made while no worker ran are
 * found by the next watcher's listing; a worker, or the Temporal server, killed mid-stream loses
 * and duplicates nothing.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { startWatch } from '../src/client';
import { writeColorImage, type DemoFormat } from '../src/demo/images';
import { Ids, watchProgressQuery } from '../src/workflows/contract';
import { startDevServer } from '../src/temporal/devServer';
import { CLI } from './support/paths';
import { restartableServerOptions } from './support/restartableServer';
import { historyText, makeFixture, query, testClient, testServer, uniqueQueue, withWorker, type Fixture } from './support/pipeline';

let client: Client;
let connection: Connection;
const workers: ChildProcess[] = [];
/** What the worker processes wrote, shown when a test fails. */
let workerLog = '';
/** The watch a test runs, for failure messages. */
let currentWatch = '';

beforeAll(async () => {
  ({ client, connection } = await testClient());
});
afterAll(async () => {
  for (const worker of workers) worker.kill('SIGKILL');
  await connection.close();
});

/** Events only: a reconcile listing an hour away cannot be what finds a new file. */
const WATCH = { debounce: '100ms', maxWait: '500ms', maxBatch: 50, reconcileEvery: '1h' };

async function rows(fixture: Fixture): Promise<{ uri: string; generation: string; n: number }[]> {
  return query(
    fixture.config,
    `SELECT uri, CAST(generation AS VARCHAR) AS generation, CAST(count(*) AS INTEGER) AS n FROM objinfer_test.predictions GROUP BY ALL ORDER BY uri, generation`,
  ).catch(() => []) as Promise<{ uri: string; generation: string; n: number }[]>;
}

/** A liveness bound (not a timing goal): what the watch owes must happen within it. */
async function eventually<T>(
  what: string,
  probe: () => Promise<T>,
  ok: (value: T) => boolean,
  timeoutMs = 90_000,
  diagnosis: () => Promise<string> = async () => (currentWatch ? diagnose(currentWatch) : ''),
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (ok(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000}s; last seen ${JSON.stringify(value)}\n${await diagnosis()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The end of the watch's history and what the worker processes wrote, for a failure message. */
async function diagnose(workflowId: string, on: Client = client): Promise<string> {
  const history = await on.workflow.getHandle(workflowId).fetchHistory();
  const events = (history.events ?? []).slice(-12).map((e) => JSON.stringify(e).slice(0, 600));
  return `the watch's last events:\n${events.join('\n')}\nworkers wrote:\n${workerLog.slice(-3000)}`;
}

async function stopWatch(workflowId: string): Promise<void> {
  await client.workflow
    .getHandle(workflowId)
    .cancel()
    .catch(() => undefined);
}

test('a watched folder: new files are predicted from their events, a replaced file again, and nothing twice', async () => {
  const taskQueue = uniqueQueue('watch');
  const fixture = await makeFixture({ labels: ['red', 'green', 'blue'], taskQueue, config: { watch: WATCH } });
  const { workflowId } = await startWatch(client, fixture.config);
  currentWatch = workflowId;
  expect(workflowId).toBe(Ids.watch(fixture.config.name));
  try {
    await withWorker(taskQueue, async () => {
      await eventually(
        'the images there at the start',
        () => rows(fixture),
        (r) => r.length === 3,
      );
      const added = [];
      for (const label of ['yellow', 'cyan', 'magenta', 'white'] as const) added.push(await fixture.addImage(label));
      const afterAdding = await eventually(
        'the four new images',
        () => rows(fixture),
        (r) => r.length === 7,
      );
      expect(afterAdding.map((r) => r.uri)).toEqual(expect.arrayContaining(added));

      // New bytes under an old name: a new generation, predicted; the old row stays as history.
      const replaced = added[0]!;
      writeFileSync(replaced.slice('file://'.length), await blackImage(fixture, replaced.split('.').pop() as DemoFormat));
      const afterReplacing = await eventually(
        'the replaced image',
        () => rows(fixture),
        (r) => r.length === 8,
      );
      expect(afterReplacing.filter((r) => r.uri === replaced)).toHaveLength(2);
      expect(afterReplacing.every((r) => r.n === 1)).toBe(true);

      const labels = await query<{ label: string }>(
        fixture.config,
        `SELECT p.label FROM objinfer_test.predictions p JOIN objinfer_test.images o USING (uri, generation) WHERE uri = '${replaced}'`,
      );
      expect(labels).toEqual([{ label: 'black' }]);

      // The rows are committed before the watch hears that its micro-batch ended.
      const progress = await eventually(
        'the watch counting them',
        () => client.workflow.getHandle(workflowId).query(watchProgressQuery),
        (p) => p.predicted >= 8,
      );
      expect(progress.predicted).toBe(8);
      expect(progress.microBatches).toBeGreaterThanOrEqual(3);
    });

    // No worker: nothing hears these two. The next worker's watcher finds them by its first listing.
    const unheard = [await fixture.addImage('red'), await fixture.addImage('blue')];
    await withWorker(taskQueue, async () => {
      const found = await eventually(
        'the images added while no worker ran',
        () => rows(fixture),
        (r) => r.length === 10,
        120_000,
      );
      expect(found.map((r) => r.uri)).toEqual(expect.arrayContaining(unheard));
      expect(found.every((r) => r.n === 1)).toBe(true);
    });

    // Counts only: no object's name is in the watch's history (its config's patterns are).
    const { text } = await historyText(client, workflowId);
    const names = (await rows(fixture)).map((r) => r.uri.split('/').pop()!);
    expect(names).toHaveLength(10);
    expect(names.filter((name) => text.includes(name))).toEqual([]);
  } finally {
    await stopWatch(workflowId);
  }
}, 300_000);

/** A black image's bytes, made outside the watched folder. */
async function blackImage(fixture: Fixture, format: DemoFormat): Promise<Buffer> {
  const path = await writeColorImage(fixture.dir, 'black', 99_999, format);
  const bytes = readFileSync(path);
  rmSync(path);
  return bytes;
}

function startWorkerProcess(fixture: Fixture, taskQueue: string, address = testServer().address): ChildProcess {
  const env = { ...process.env, TEMPORAL_ADDRESS: address, OBJINFER_HOME: join(fixture.dir, 'state') };
  const child = spawn(CLI, ['worker', '--task-queue', taskQueue], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr!.on('data', (chunk: Buffer) => (workerLog += chunk.toString()));
  workers.push(child);
  return child;
}

test('a worker killed during a stream of new files: every file is predicted exactly once', async () => {
  const taskQueue = uniqueQueue('watch-kill');
  const fixture = await makeFixture({ labels: ['red'], taskQueue, config: { watch: WATCH, batch: { size: 4, concurrency: 1, heartbeatTimeout: '2s' } } });
  let worker = startWorkerProcess(fixture, taskQueue);
  const { workflowId } = await startWatch(client, fixture.config);
  currentWatch = workflowId;
  try {
    await eventually(
      'the first image',
      () => rows(fixture),
      (r) => r.length === 1,
    );
    const written: string[] = [];
    const labels = ['green', 'blue', 'yellow', 'cyan', 'magenta', 'white', 'black', 'red'] as const;
    for (let i = 0; i < 40; i++) {
      written.push(await fixture.addImage(labels[i % labels.length]!));
      await new Promise((r) => setTimeout(r, 100)); // about 10 files a second
      if (i === 15) {
        worker.kill('SIGKILL');
        worker = startWorkerProcess(fixture, taskQueue);
      }
    }
    const all = await eventually(
      'every file written',
      () => rows(fixture),
      (r) => r.length === 41,
      180_000,
      () => diagnose(workflowId),
    );
    expect(all.map((r) => r.uri)).toEqual(expect.arrayContaining(written));
    expect(all.filter((r) => r.n !== 1)).toEqual([]);
  } finally {
    await stopWatch(workflowId);
    worker.kill('SIGKILL');
  }
}, 300_000);

test('the Temporal server killed during a stream of new files: the watch goes on when it is back, every file predicted exactly once', async () => {
  // A server of its own, which comes back on the same ports and database.
  const serverOptions = await restartableServerOptions('watch-outage');
  let server = await startDevServer(serverOptions);
  const own = await Connection.connect({ address: server.address });
  const ownClient = new Client({ connection: own });
  const taskQueue = uniqueQueue('watch-outage');
  const fixture = await makeFixture({ labels: ['red'], taskQueue, config: { watch: WATCH, batch: { size: 4, concurrency: 1, heartbeatTimeout: '2s' } } });
  const worker = startWorkerProcess(fixture, taskQueue, server.address);
  const { workflowId } = await startWatch(ownClient, fixture.config);
  const diagnosis = () => diagnose(workflowId, ownClient);
  try {
    await eventually(
      'the first image',
      () => rows(fixture),
      (r) => r.length === 1,
      90_000,
      diagnosis,
    );
    const written: string[] = [];
    const labels = ['green', 'blue', 'yellow', 'cyan', 'magenta', 'white', 'black', 'red'] as const;
    for (let i = 0; i < 40; i++) {
      written.push(await fixture.addImage(labels[i % labels.length]!));
      await new Promise((r) => setTimeout(r, 100)); // about 10 files a second
      if (i === 15) process.kill(server.pid, 'SIGKILL'); // the other 24 arrive while it is down
    }
    // Their micro-batches close (maxWait 500 ms) and cannot be signalled; the server comes back after.
    await new Promise((r) => setTimeout(r, 2000));
    server = await startDevServer(serverOptions);
    const all = await eventually(
      'every file written',
      () => rows(fixture),
      (r) => r.length === 41,
      180_000,
      diagnosis,
    );
    expect(all.map((r) => r.uri)).toEqual(expect.arrayContaining(written));
    expect(all.filter((r) => r.n !== 1)).toEqual([]);
    expect((await ownClient.workflow.getHandle(workflowId).describe()).status.name).toBe('RUNNING');
  } finally {
    await ownClient.workflow
      .getHandle(workflowId)
      .cancel()
      .catch(() => undefined);
    worker.kill('SIGKILL');
    await own.close();
    await server.stop();
  }
}, 300_000);

test('objinfer watch prints a line per micro-batch, status and list show the watch, and watch exits 4 when it is stopped', async () => {
  const taskQueue = uniqueQueue('watch-cli');
  const fixture = await makeFixture({ labels: ['red'], taskQueue, config: { watch: WATCH } });
  const env = { ...process.env, TEMPORAL_ADDRESS: testServer().address, OBJINFER_HOME: join(fixture.dir, 'state') };
  const cli = spawn(CLI, ['watch', '--config', fixture.configFile], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  workers.push(cli);
  let out = '';
  let err = '';
  cli.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  cli.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => cli.on('exit', resolve));
  currentWatch = Ids.watch(fixture.config.name);
  await eventually(
    'the first micro-batch line',
    async () => out,
    (text) => /micro-batch 1: 1 predicted/.test(text),
  );
  await fixture.addImage('blue');
  await eventually(
    'the line for the new image',
    async () => out,
    (text) => /micro-batch 2: 1 predicted, 0 failed/.test(text),
  );
  const status = spawnSync(CLI, ['status', `${fixture.config.name}-watch`], { env, encoding: 'utf8' });
  expect(status.stdout).toMatch(/watching: 2 micro-batches, 2 predicted, 0 failed, 0 changes waiting/);
  const listed = spawnSync(CLI, ['list', '-o', 'json'], { env, encoding: 'utf8' });
  expect(JSON.parse(listed.stdout)).toContainEqual(expect.objectContaining({ workflow: Ids.watch(fixture.config.name), kind: 'watch', status: 'RUNNING' }));
  await client.workflow.getHandle(Ids.watch(fixture.config.name)).cancel();
  expect(await exited).toBe(4);
  expect(err).toMatch(`started the watch of ${fixture.config.name}`);
  expect(err).toMatch(`objinfer: the watch of ${fixture.config.name} was stopped`);
}, 120_000);
