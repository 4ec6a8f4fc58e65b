/**
 * The CLI as scripts and people use it, against the real dev server: exit codes as the
 * docs state them, typed JSON and safe CSV, run semantics (what forms a prediction
 * version, failures retried only when asked, one run per pipeline whoever starts it),
 * interrupts and outages that lose nothing, and output that fits a terminal.
 */
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import type { Client, Connection } from '@temporalio/client';
import sharp from 'sharp';
import { stringify } from 'yaml';
import { startPipeline, waitForResult } from '../src/client';
import { createSchedule, triggerSchedule } from '../src/schedules';
import { connectTemporal } from '../src/temporal/connection';
import { startDevServer } from '../src/temporal/devServer';
import { Ids, type ScheduledOutcome } from '../src/workflows/contract';
import { CLI } from './support/paths';
import { freePorts } from './support/ports';
import { restartableServerOptions } from './support/restartableServer';
import { makeFixture, query, testClient, testServer, uniqueQueue, withWorker, type Fixture } from './support/pipeline';

let client: Client;
let connection: Connection;
beforeAll(async () => ({ client, connection } = await testClient()));
afterAll(() => connection.close());

function cli(fixture: Fixture, args: string[], env: Record<string, string> = {}): SpawnSyncReturns<string> {
  return spawnSync(CLI, args, {
    cwd: fixture.dir,
    env: { ...process.env, TEMPORAL_ADDRESS: testServer().address, OBJINFER_HOME: join(fixture.dir, 'state'), ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });
}

async function eventually<T>(probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Large JPEGs in batches of two: a run that lasts a few seconds, to interrupt or overlap. */
async function slowFixture(name: string, count: number): Promise<Fixture> {
  const f = await makeFixture({ labels: [], taskQueue: uniqueQueue(name), config: { batch: { size: 2, concurrency: 1, heartbeatTimeout: '5s' } } });
  for (let i = 0; i < count; i++) {
    await sharp({ create: { width: 1600, height: 1600, channels: 3, background: { r: 230, g: 20, b: 20 } } })
      .jpeg()
      .toFile(join(f.imagesDir, `red-${i}.jpg`));
  }
  return f;
}

/**
 * Reads the prediction count with the warehouse attached read-only by a DuckDB of its own,
 * every 5 ms until `act` returns a value, which it does with the file still held.
 */
async function whileWarehouseHeld<T>(f: Fixture, act: (rows: number) => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const instance = await DuckDBInstance.create(f.config.local.warehouse, { access_mode: 'READ_ONLY' }).catch(() => undefined);
    if (instance) {
      try {
        const connection = await instance.connect();
        const rows = await connection
          .runAndReadAll('SELECT count(*) FROM objinfer_test.predictions')
          .then((r) => Number(r.getRows()[0]![0]))
          .catch(() => 0); // not made yet
        const value = await act(rows);
        connection.closeSync();
        if (value !== undefined) return value;
      } finally {
        instance.closeSync();
      }
    }
    if (Date.now() > deadline) throw new Error('timed out waiting for the warehouse');
    await new Promise((r) => setTimeout(r, 5));
  }
}

const predictionCount = async (f: Fixture) =>
  (await query<{ n: bigint; uris: bigint }>(f.config, 'SELECT count(*) AS n, count(DISTINCT uri) AS uris FROM objinfer_test.predictions'))[0]!;

describe('exit codes, as documented', () => {
  test('unknown command, unknown flag, bad choice and missing --config exit 2; --version prints the version', async () => {
    const f = await makeFixture({ labels: [], taskQueue: uniqueQueue('exits') });
    expect(cli(f, ['frobnicate']).status).toBe(2);
    expect(cli(f, ['run', '--config', f.configFile, '--turbo']).status).toBe(2);
    expect(cli(f, ['list', '--stage', 'cooking']).status).toBe(2);
    expect(cli(f, ['list', '--stage', 'cooking']).stderr).toMatch(/Allowed choices are preflight, provision, plan, infer, done/);
    expect(cli(f, ['run']).status).toBe(2);
    const version = cli(f, ['--version']);
    expect([version.status, version.stdout.trim()]).toEqual([0, '0.1.0']);
  });

  test('cancel of a run that does not exist says so and exits 2', async () => {
    const f = await makeFixture({ labels: [], taskQueue: uniqueQueue('nosuch') });
    const result = cli(f, ['cancel', 'no-such-pipeline']);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/^objinfer: no run of pipeline no-such-pipeline \(workflow ID objinfer-no-such-pipeline\)/);
  });

  test('a run in which every image failed exits 1; status of a failed run exits 1; a cancelled run is reported as cancelled (4)', async () => {
    const f = await makeFixture({ labels: [], corrupt: true, taskQueue: uniqueQueue('allfail') });
    const run = cli(f, ['run', '--config', f.configFile]);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/no image was predicted: all 1 failed/);

    const broken = await makeFixture({
      labels: ['red'],
      taskQueue: uniqueQueue('failedrun'),
      config: { iam: { simulatedPropagationDelay: '1h', propagationTimeout: '2s' } },
    });
    const failing = await startPipeline(client, broken.config);
    const failed = await withWorker(broken.config.temporal.taskQueue, () => waitForResult(client, failing.workflowId).catch(() => 'failed'));
    expect(failed).toBe('failed');
    const status = cli(broken, ['status', broken.config.name]);
    expect(status.status).toBe(1);
    expect(status.stdout).toMatch(/FAILED[\s\S]*failure: .*IAM permissions did not propagate within 2\.0s/);

    const slow = await slowFixture('cancelled', 6);
    const started = await startPipeline(client, slow.config); // no worker yet: it waits, and is cancelled first
    await client.workflow.getHandle(started.workflowId).cancel();
    await withWorker(slow.config.temporal.taskQueue, () => waitForResult(client, started.workflowId).catch(() => undefined));
    const cancelled = cli(slow, ['status', slow.config.name]);
    expect(cancelled.status).toBe(4);
    expect(cancelled.stdout).toMatch(/CANCELLED[\s\S]*the run was cancelled/);
  }, 120_000);
});

describe('machine-readable output', () => {
  test('results -o json is typed: numbers, a top_k list of {label, index, score}, ISO times', async () => {
    const f = await makeFixture({ labels: ['red', 'blue'], taskQueue: uniqueQueue('json') });
    expect(cli(f, ['run', '--config', f.configFile]).status).toBe(0);
    const rows = JSON.parse(cli(f, ['results', '--config', f.configFile, '-o', 'json']).stdout) as Record<string, unknown>[];
    expect(rows).toHaveLength(2);
    for (const row of rows) {
      expect(typeof row.score).toBe('number');
      expect(row.top_k).toEqual([
        { label: row.label, index: expect.any(Number), score: row.score },
        expect.objectContaining({ label: expect.any(String), index: expect.any(Number), score: expect.any(Number) }),
        expect.objectContaining({ label: expect.any(String) }),
        expect.objectContaining({ label: expect.any(String) }),
        expect.objectContaining({ label: expect.any(String) }),
      ]);
      expect(new Date(row.predicted_at as string).toISOString()).toBe(row.predicted_at);
    }
    const jsonl = cli(f, ['results', '--config', f.configFile, '-o', 'jsonl']).stdout.trim().split('\n');
    expect(jsonl.map((line) => JSON.parse(line) as Record<string, unknown>)).toEqual(rows);
    const summary = JSON.parse(cli(f, ['run', '--config', f.configFile, '-o', 'json']).stdout) as Record<string, unknown>;
    expect(summary).toMatchObject({ predicted: 0, alreadyPredicted: 2, failedNow: 0, failedEarlier: 0, labelCounts: [] });
  });

  test('CSV quotes commas, quotes and line breaks, and neutralises cells a spreadsheet would run as formulas', async () => {
    const f = await makeFixture({ labels: [], taskQueue: uniqueQueue('csv') });
    writeFileSync(f.config.model.labels!, ['=HYPERLINK("http://x")', 'comma, "quoted"', '+plus', '-minus', '@at', 'cyan', 'white', 'black'].join('\n'));
    await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 250, g: 10, b: 10 } } })
      .png()
      .toFile(join(f.imagesDir, 'line\rbreak.png'));
    expect(cli(f, ['run', '--config', f.configFile]).status).toBe(0);
    const csv = cli(f, ['results', '--config', f.configFile, '-o', 'csv']).stdout;
    const [header, row] = csv.split('\r\n');
    expect(header).toBe('uri,generation,label,score,top_k,model_version,run_id,predicted_at');
    // The name's carriage return is percent-encoded in the URI; the label that starts with "=" is neutralised and quoted.
    expect(row).toMatch(/^file:\/\/.*line%0Dbreak\.png,\d+,"'=HYPERLINK\(""http:\/\/x""\)",0\.\d+,"\[\{""label"":""=HYPERLINK/);
    const errors = cli(f, ['results', '--config', f.configFile, '--errors', '-o', 'csv']).stdout;
    expect(errors).toBe('uri,generation,error,kind,model_version,run_id,failed_at\r\n');
  });
});

describe('run semantics', () => {
  test('everything that changes a prediction forms the version: topK, preserve-aspect, keepProbabilities', async () => {
    const f = await makeFixture({ labels: ['red'], taskQueue: uniqueQueue('version') });
    const base = JSON.parse(cli(f, ['run', '--config', f.configFile, '-o', 'json']).stdout) as { predictionVersion: string; predicted: number };
    const versions = new Set([base.predictionVersion]);
    for (const change of [
      { results: { topK: 2 } },
      { model: { ...rawModel(), preserveAspectRatio: true, inputSize: 32 } },
      { results: { keepProbabilities: true } },
    ]) {
      writeFileSync(f.configFile, stringify({ ...rawConfig(f), ...change }));
      const summary = JSON.parse(cli(f, ['run', '--config', f.configFile, '-o', 'json']).stdout) as {
        predictionVersion: string;
        predicted: number;
        failedNow: number;
      };
      expect(summary.predicted + summary.failedNow).toBe(1); // done again under the new version
      versions.add(summary.predictionVersion);
    }
    expect(versions.size).toBe(4);
  });

  test('failures are not "already predicted": the summary tells them apart, and --retry-failed tries them again, once', async () => {
    const f = await makeFixture({ labels: ['red'], taskQueue: uniqueQueue('retry') });
    // 81 megapixels, 243 MB of RGB: more than a decoder capped at 200 MB can hold, fine with the default cap.
    await sharp({ create: { width: 9000, height: 9000, channels: 3, background: { r: 10, g: 10, b: 240 } } })
      .png()
      .toFile(join(f.imagesDir, 'big-blue.png'));
    const capped = cli(f, ['run', '--config', f.configFile, '-o', 'json'], { OBJINFER_DECODER_MEMORY_MB: '200' });
    expect(JSON.parse(capped.stdout)).toMatchObject({ predicted: 1, failedNow: 1 });
    const again = JSON.parse(cli(f, ['run', '--config', f.configFile, '-o', 'json']).stdout) as Record<string, number>;
    expect(again).toMatchObject({ predicted: 0, alreadyPredicted: 1, failedEarlier: 1, failedNow: 0 });
    const retried = JSON.parse(cli(f, ['run', '--config', f.configFile, '--retry-failed', '-o', 'json']).stdout) as Record<string, number>;
    expect(retried).toMatchObject({ predicted: 1, alreadyPredicted: 1, failedEarlier: 0, failedNow: 0 });
    expect(await predictionCount(f)).toEqual({ n: 2n, uris: 2n });
    expect(await query(f.config, 'SELECT * FROM objinfer_test.predictions_errors')).toEqual([]);
  }, 180_000);

  test('a labels file of the wrong length is refused before anything is created (exit 2, naming both counts)', async () => {
    const f = await makeFixture({ labels: ['red'], taskQueue: uniqueQueue('labels') });
    writeFileSync(f.config.model.labels!, 'only\ntwo\n');
    for (const command of [
      ['run', '--config', f.configFile],
      ['plan', '--config', f.configFile],
    ]) {
      const result = cli(f, command);
      expect(result.status).toBe(2);
      expect(result.stderr).toMatch(/config error: model\.labels \(.*\) has 2 labels \(blank lines are not counted\) but output "scores" of .* has 8 classes/);
    }
    expect(existsSync(f.config.local.warehouse)).toBe(false);
  });

  test('preserveAspectRatio with a model of fixed size is warned about before the run', async () => {
    const f = await makeFixture({ labels: ['red'], taskQueue: uniqueQueue('aspect') });
    writeFileSync(f.configFile, stringify({ ...rawConfig(f), model: { ...rawModel(), preserveAspectRatio: true } }));
    const result = cli(f, ['run', '--config', f.configFile]);
    expect(result.stderr).toMatch(/warning: model\.preserveAspectRatio is true and the model takes exactly 32x32/);
  });

  test('repeated runs with the in-process worker always exit 0', async () => {
    const f = await makeFixture({ labels: ['red', 'green'], taskQueue: uniqueQueue('repeat') });
    const codes = Array.from({ length: 8 }, () => cli(f, ['run', '--config', f.configFile]));
    expect(codes.map((c) => c.status)).toEqual(new Array(8).fill(0));
    expect(codes.map((c) => c.stderr).join('\n')).not.toMatch(/Channel has been shut down|pipeline failed/);
  }, 180_000);

  test('one run per pipeline: a manual run attaches to a scheduled one; a slot stands aside while a manual run goes', async () => {
    const f = await slowFixture('one-run', 8);
    const { scheduleId } = await createSchedule(client, f.config, { every: '1h' });
    try {
      await withWorker(f.config.temporal.taskQueue, async () => {
        await triggerSchedule(client, scheduleId);
        const child = await eventually(async () => {
          const d = await client.workflow.getHandle(Ids.pipeline(f.config.name)).describe();
          return d.status.name === 'RUNNING' ? d : undefined;
        });
        const manual = await startPipeline(client, f.config);
        expect(manual.attached).toBe(true);
        expect(manual.handle.firstExecutionRunId).toBe(child.runId);
        await waitForResult(client, manual.workflowId);

        for (let i = 0; i < 4; i++) {
          // Something new, so that the next run has work to do while the slot comes.
          await sharp({ create: { width: 1600, height: 1600, channels: 3, background: { r: 20, g: 20, b: 230 } } })
            .jpeg()
            .toFile(join(f.imagesDir, `blue-${i}.jpg`));
        }
        const second = await startPipeline(client, f.config);
        expect(second.attached).toBe(false);
        await triggerSchedule(client, scheduleId);
        const slots = await eventually(async () => {
          const { info } = await client.schedule.getHandle(scheduleId).describe();
          return info.recentActions.length === 2 ? info.recentActions : undefined;
        });
        const outcome = (await client.workflow.getHandle(slots[1]!.action.workflow.workflowId).result()) as ScheduledOutcome;
        expect(outcome).toEqual({ ran: false, reason: expect.stringMatching(/already going/), runningWorkflowId: Ids.pipeline(f.config.name) });
        await waitForResult(client, second.workflowId);
      });
      expect(await predictionCount(f)).toEqual({ n: 12n, uris: 12n });
    } finally {
      await client.schedule.getHandle(scheduleId).delete();
    }
  }, 180_000);
});

describe('interrupts, outages and missing workers', () => {
  test('Ctrl-C on `run` says at once that the run goes on and how to re-attach; re-attaching finishes it exactly once', async () => {
    const f = await slowFixture('ctrlc', 40);
    for (const [signal, code] of [
      ['SIGINT', 130],
      ['SIGTERM', 143],
    ] as const) {
      const child = spawn(CLI, ['run', '--config', f.configFile], {
        cwd: f.dir,
        env: { ...process.env, TEMPORAL_ADDRESS: testServer().address, OBJINFER_HOME: join(f.dir, 'state') },
      });
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      await eventually(async () => (/started pipeline|attached to the running/.test(stderr) ? true : undefined));
      const sentAt = Date.now();
      child.kill(signal);
      const exit = await new Promise<number | null>((done) => child.once('exit', done));
      expect(exit).toBe(code);
      expect(Date.now() - sentAt).toBeLessThan(8000);
      expect(stderr).toMatch(new RegExp(`${signal}: stopped watching\\. The run goes on on the Temporal server \\(workflow ${Ids.pipeline(f.config.name)}\\)`));
      expect(stderr).toMatch(/re-attach: objinfer run --config/);
      expect(stderr).not.toMatch(/pipeline failed|Promise did not resolve|Channel has been shut down/);
    }
    const finished = cli(f, ['run', '--config', f.configFile]);
    expect(finished.status).toBe(0);
    expect(await predictionCount(f)).toEqual({ n: 40n, uris: 40n });
  }, 180_000);

  test('a Temporal outage during `run` is waited out, saying why; the run finishes exactly once', async () => {
    // The server comes back on the same ports: ones no other process can be given meanwhile.
    const serverOptions = await restartableServerOptions('outage');
    let server = await startDevServer(serverOptions);
    const f = await slowFixture('outage', 60);
    const child = spawn(CLI, ['run', '--config', f.configFile], {
      cwd: f.dir,
      env: { ...process.env, TEMPORAL_ADDRESS: server.address, OBJINFER_HOME: join(f.dir, 'state') },
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((done) => child.once('exit', done));
    try {
      // The server dies while some rows have landed and others cannot yet: the count is read with
      // the warehouse held (a reader keeps the worker's writes out), so no batch lands between
      // the read and the kill. Reads come every few ms, well inside the gap between two batches'
      // writes (a batch is decoded and inferred with the file let go).
      const landed = await whileWarehouseHeld(f, async (rows) => {
        if (rows === 0) return undefined;
        process.kill(server.pid, 'SIGKILL');
        return rows;
      });
      expect(landed).toBeLessThan(60);
      await eventually(async () => (/is unreachable .*trying again in \d+s \(the run goes on on the server\)/.test(stderr) ? true : undefined), 60_000);
      server = await startDevServer(serverOptions);
      expect(await exited).toBe(0);
      expect(stderr).not.toMatch(/pipeline failed|Channel has been shut down/);
      expect(await predictionCount(f)).toEqual({ n: 60n, uris: 60n });
    } finally {
      child.kill('SIGKILL');
      await server.stop();
    }
  }, 300_000);

  test('a schedule with no worker polling its task queue: create says so, and status says so of its run', async () => {
    const f = await makeFixture({ labels: ['red'], taskQueue: uniqueQueue('noworker') });
    const created = cli(f, ['schedule', 'create', '--config', f.configFile, '--every', '1d']);
    try {
      expect(created.status).toBe(0);
      expect(created.stderr).toMatch(
        /warning: no worker polls task queue noworker-\w+: runs wait .* Start one with `objinfer worker --task-queue noworker-\w+`/,
      );
      await startPipeline(client, f.config);
      const status = cli(f, ['status', f.config.name]);
      expect(status.stdout).toMatch(/RUNNING[\s\S]*not started by a worker yet[\s\S]*no worker polls task queue/);
    } finally {
      await client.schedule.getHandle(Ids.schedule(f.config.name)).delete();
      await client.workflow.getHandle(Ids.pipeline(f.config.name)).terminate('test over');
    }
  });

  test('a bad ONNX file: one line naming model.source as written, exit 2, nothing created', async () => {
    const f = await makeFixture({ labels: ['red'], taskQueue: uniqueQueue('badonnx') });
    writeFileSync(f.config.model.source, 'not a model');
    const result = cli(f, ['run', '--config', f.configFile]);
    expect(result.status).toBe(2);
    const lines = result.stderr.trim().split('\n');
    expect(lines.length).toBeLessThanOrEqual(2);
    expect(lines[0]).toContain(`config error: model.source ${f.config.model.source} is not an ONNX model ONNX Runtime can load`);
    expect(readdirSync(f.dir)).not.toContain('state');
  });
});

describe('a second Temporal and the demo', () => {
  test('objinfer dev-server --port runs beside another Temporal; other commands use it; a server objinfer did not start is named', async () => {
    const home = mkdtempSync(join(tmpdir(), 'objinfer-ports-'));
    const [port, uiPort] = (await freePorts(2)) as [number, number];
    const env = { ...process.env, OBJINFER_HOME: home, TEMPORAL_ADDRESS: '' };
    const server = spawn(CLI, ['dev-server', '--port', String(port), '--ui-port', String(uiPort)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      await eventually(async () => (existsSync(join(home, 'temporal-dev-server.json')) ? true : undefined), 90_000);
      const status = spawnSync(CLI, ['status'], { env, encoding: 'utf8' });
      expect(status.stderr).toMatch(/no objinfer runs found/); // it reached the server on the recorded port
      expect(status.status).toBe(2);
      const notices: string[] = [];
      const elsewhere = mkdtempSync(join(tmpdir(), 'objinfer-other-'));
      const saved = { home: process.env.OBJINFER_HOME, address: process.env.TEMPORAL_ADDRESS };
      process.env.OBJINFER_HOME = elsewhere; // a home that did not start this server
      delete process.env.TEMPORAL_ADDRESS; // and no configured address
      const connected = await connectTemporal({ port, startDevServer: 'no', onNotice: (n) => notices.push(n) }).finally(() => {
        process.env.OBJINFER_HOME = saved.home;
        process.env.TEMPORAL_ADDRESS = saved.address;
        if (saved.home === undefined) delete process.env.OBJINFER_HOME;
      });
      await connected.close();
      expect(notices).toEqual([
        expect.stringMatching(new RegExp(`using the Temporal server already listening on 127\\.0\\.0\\.1:${port} .*which objinfer did not start`)),
      ]);
    } finally {
      server.kill('SIGINT');
      await new Promise((done) => server.once('exit', done));
    }
  }, 120_000);

  test('the dev server objinfer started is found from any folder: run there uses it, and dev-server stop there stops it', async () => {
    const home = mkdtempSync(join(tmpdir(), 'objinfer-user-'));
    const here = join(home, 'here');
    const there = join(home, 'there');
    [here, there].forEach((dir) => mkdirSync(dir));
    const [port, uiPort] = (await freePorts(2)) as [number, number];
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, TEMPORAL_ADDRESS: '' };
    delete env.OBJINFER_HOME;
    delete env.XDG_STATE_HOME;
    const record = join(home, '.local', 'state', 'objinfer', 'temporal-dev-server.json');
    const server = spawn(CLI, ['dev-server', '--port', String(port), '--ui-port', String(uiPort)], { cwd: here, env, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      await eventually(async () => (existsSync(record) ? true : undefined), 90_000);
      const status = spawnSync(CLI, ['status'], { cwd: there, env, encoding: 'utf8' });
      expect(status.stderr).toMatch(/no objinfer runs found/); // reached the server on its recorded port, from another folder
      expect(status.stderr).not.toMatch(/did not start/);
      const { pid } = JSON.parse(readFileSync(record, 'utf8')) as { pid: number };
      const stop = spawnSync(CLI, ['dev-server', 'stop'], { cwd: there, env, encoding: 'utf8' });
      expect(stop.stdout).toBe(`stopped the dev server (pid ${pid}, port ${port})\n`);
      await eventually(async () => (alive(pid) ? undefined : true), 30_000);
      expect(existsSync(record)).toBe(false);
    } finally {
      // With its server stopped, `dev-server` may already have ended by itself.
      if (server.exitCode === null && server.signalCode === null) {
        const exited = new Promise((done) => server.once('exit', done));
        server.kill('SIGINT');
        await exited;
      }
    }
  }, 150_000);

  test('the demo fits a terminal: a compact table of relative names, at most a dozen rows', () => {
    const home = mkdtempSync(join(tmpdir(), 'objinfer-demo-'));
    const result = spawnSync(CLI, ['demo'], {
      cwd: home,
      env: { ...process.env, TEMPORAL_ADDRESS: testServer().address, OBJINFER_HOME: join(home, '.objinfer') },
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(result.status).toBe(0);
    // Only a path or a link, alone on its line, may be wider than the terminal.
    const lines = result.stdout.split('\n');
    expect(lines.filter((l) => l.length > 100 && !/^ {2}(\/|https?:\/\/)\S+$/.test(l))).toEqual([]);
    expect(result.stdout).toMatch(/predictions \(12 of 24, newest first\):\nimage +label +score +top 3\n/);
    expect(result.stdout).not.toContain('file://');
    expect(lines.length).toBeLessThan(50);
    // The demo ends with the picture: the report's path, and the report there.
    const report = lines[lines.indexOf('the report (images, labels, scores, errors), to open in a browser:') + 1]!.trim();
    expect(report).toMatch(/\/demo\/report\.html$/);
    expect(readFileSync(report, 'utf8')).toContain('<title>objinfer report: demo</title>');
  }, 150_000);
});

/** The fixture's config as written (makeFixture's defaults), to change and write back. */
function rawConfig(f: Fixture): Record<string, unknown> {
  return {
    name: f.config.name,
    dataset: 'objinfer_test',
    bucket: 'objinfer-test-models',
    objectTable: 'images',
    sourceUris: ['images/*'],
    model: rawModel(),
    batch: { size: 4, concurrency: 2, heartbeatTimeout: '5s' },
    local: { warehouse: 'warehouse.duckdb', storage: 'storage' },
    temporal: { taskQueue: f.config.temporal.taskQueue },
  };
}

function rawModel() {
  return { name: 'color_classifier', source: 'models/color-classifier.onnx', labels: 'models/color-classifier.labels.txt' };
}

/** Whether a process runs (a zombie, dead but not yet reaped by its parent, does not). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
