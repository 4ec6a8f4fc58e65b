/**
 * What each command loads before it answers (issue 35): help and version only commander;
 * `results` over a local warehouse neither Temporal nor Google's clients nor the engines;
 * `status` and `list` Temporal's client and nothing of the backends; `run --no-worker` no
 * engine and no worker; `run` with its own worker on the local backend none of Google's clients.
 * Checked by the packages
 * in the process's module cache at exit, not by timing (the times are in `make bench`: cli).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client, Connection } from '@temporalio/client';
import { startPipeline, waitForResult } from '../src/client';
import { CLI } from './support/paths';
import { makeFixture, testClient, testServer, uniqueQueue, withWorker, type Fixture } from './support/pipeline';

const PRELOAD = join(__dirname, 'support', 'loadedPackages.cjs');
const ENGINES = ['@duckdb/node-api', 'onnxruntime-node', 'sharp'];
const GOOGLE = ['@google-cloud/bigquery', '@google-cloud/bigquery-connection', '@google-cloud/storage', '@google-cloud/resource-manager'];
const WORKER = ['@temporalio/worker', '@temporalio/core-bridge'];

let connection: Connection;
let client: Client;
let fixture: Fixture;

beforeAll(async () => {
  ({ client, connection } = await testClient());
  const taskQueue = uniqueQueue('startup');
  fixture = await makeFixture({ labels: ['red', 'green'], taskQueue });
  await withWorker(taskQueue, async () => {
    const { workflowId } = await startPipeline(client, fixture.config);
    expect((await waitForResult(client, workflowId)).predicted).toBe(2);
  });
});

afterAll(() => connection.close());

function cliRun(args: string[]) {
  const out = join(mkdtempSync(join(tmpdir(), 'objinfer-startup-')), 'packages.txt');
  const options = {
    cwd: fixture.dir,
    env: { ...process.env, OBJINFER_LOADED_PACKAGES: out, TEMPORAL_ADDRESS: testServer().address, OBJINFER_HOME: join(fixture.dir, 'state') },
  };
  return { argv: ['-r', PRELOAD, CLI, ...args], options, packages: () => readFileSync(out, 'utf8').split('\n') };
}

function loadedBy(args: string[]): { packages: string[]; status: number | null; stdout: string } {
  const cli = cliRun(args);
  const run = spawnSync(process.execPath, cli.argv, { ...cli.options, encoding: 'utf8', timeout: 60_000 });
  return { packages: cli.packages(), status: run.status, stdout: run.stdout };
}

/** Without blocking this process, whose worker the command may need. */
async function loadedByAsync(args: string[]): Promise<{ packages: string[]; status: number | null; stdout: string }> {
  const cli = cliRun(args);
  const child = spawn(process.execPath, cli.argv, { ...cli.options, stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const status = await new Promise<number | null>((done) => child.once('exit', done));
  return { packages: cli.packages(), status, stdout };
}

test.each(['--version', '--help', 'results --help', 'schedule create --help'])('objinfer %s loads commander and nothing else', (line) => {
  const { packages, status } = loadedBy(line.split(' '));
  expect(status).toBe(0);
  expect(packages).toEqual(['commander']);
});

test('objinfer results over a local warehouse loads DuckDB, not Temporal, Google clients, ONNX Runtime or sharp', () => {
  const { packages, status, stdout } = loadedBy(['results', '--config', fixture.configFile]);
  expect(status).toBe(0);
  expect(stdout).toMatch(/red/);
  expect(packages).toContain('@duckdb/node-api');
  expect(packages.filter((p) => p.startsWith('@temporalio/') && p !== '@temporalio/common')).toEqual([]);
  expect(packages).not.toEqual(expect.arrayContaining([expect.stringMatching(/^@google-cloud\//)]));
  expect(packages).not.toContain('onnxruntime-node');
  expect(packages).not.toContain('sharp');
});

test.each(['status', 'list'])("objinfer %s loads Temporal's client, not its worker, the backends or the config parser", (command) => {
  const { packages, status, stdout } = loadedBy(command === 'status' ? ['status', fixture.config.name] : ['list']);
  expect(status).toBe(0);
  expect(stdout).toMatch(/COMPLETED/);
  expect(packages).toContain('@temporalio/client');
  for (const heavy of [...WORKER, ...GOOGLE, ...ENGINES, 'zod', 'yaml']) expect(packages).not.toContain(heavy);
});

test('objinfer run --no-worker loads neither the worker, nor the backends and their engines, nor the demo', async () => {
  const { packages, status, stdout } = await withWorker(fixture.config.temporal.taskQueue, () =>
    loadedByAsync(['run', '--no-worker', '--config', fixture.configFile, '-o', 'json']),
  );
  expect(status).toBe(0);
  expect(JSON.parse(stdout)).toMatchObject({ predicted: 0, alreadyPredicted: 2 });
  for (const heavy of [...WORKER, ...GOOGLE, ...ENGINES]) expect(packages).not.toContain(heavy);
});

test("objinfer run with its own worker on the local backend loads the worker and the engines, not Google's clients, and saves the model's digest", async () => {
  const { packages, status, stdout } = await loadedByAsync(['run', '--config', fixture.configFile, '-o', 'json']);
  expect(status).toBe(0);
  expect(JSON.parse(stdout)).toMatchObject({ predicted: 0, alreadyPredicted: 2 });
  expect(packages).toEqual(expect.arrayContaining([...WORKER, '@duckdb/node-api', 'onnxruntime-node'])); // sharp decodes in child processes
  expect(packages).not.toEqual(expect.arrayContaining([expect.stringMatching(/^@google-cloud\/|^google-gax$/)]));
  // The model's digest is left for the next run, which is a process of its own (digest.ts).
  const saved = JSON.parse(readFileSync(join(fixture.dir, 'state', 'cache', 'digests.json'), 'utf8')) as string[][];
  expect(saved.map(([key]) => key)).toContain(`sha256:hex:${Buffer.from(fixture.config.model.source).toString('base64')}`);
});
