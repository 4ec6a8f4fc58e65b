/**
 * What a new user met in the third newcomer round (issue 34), through the CLI as they ran it:
 * hints that work where they are printed, rows that show each image as it is now, outputs
 * that never overwrite what the pipeline keeps, a run that attaches to another config's run
 * and says so, a closed pipe, and model files newer than the bundled ONNX Runtime reads.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client, Connection } from '@temporalio/client';
import { inspectOnnxModel } from '../src/backends/local/modelCheck';
import { startPipeline } from '../src/client';
import { prepareDemo } from '../src/demo';
import { CORRUPT_JPEG, writeColorImage } from '../src/demo/images';
import { encodeModel } from '../src/models';
import { colorClassifierOnnx } from '../src/models/colorClassifier';
import { summaryText } from '../src/cli/output';
import { CLI } from './support/paths';
import { makeFixture, runToEnd, testClient, testServer, uniqueQueue, type Fixture } from './support/pipeline';

let client: Client;
let connection: Connection;
beforeAll(async () => ({ client, connection } = await testClient()));
afterAll(() => connection.close());

function cli(fixture: Fixture, args: string[], options: { cwd?: string; shell?: string } = {}): SpawnSyncReturns<string> {
  const env = { ...process.env, TEMPORAL_ADDRESS: testServer().address, OBJINFER_HOME: join(fixture.dir, 'state') };
  if (options.shell) return spawnSync('sh', ['-c', options.shell], { cwd: options.cwd ?? fixture.dir, env, encoding: 'utf8', timeout: 120_000 });
  return spawnSync(CLI, args, { cwd: options.cwd ?? fixture.dir, env, encoding: 'utf8', timeout: 120_000 });
}

describe('after a run with a changed image and a fixed one', () => {
  let fixture: Fixture;
  beforeAll(async () => {
    fixture = await makeFixture({ labels: ['red', 'green', 'blue'], taskQueue: uniqueQueue('current'), corrupt: true });
    await runToEnd(client, fixture.config.temporal.taskQueue, fixture.config);
    // red-0 now shows blue; the corrupt file is replaced by a good green image.
    mkdirSync(join(fixture.dir, 'spare'));
    const red = join(fixture.imagesDir, 'red-000.png');
    writeFileSync(red, readFileSync(await writeColorImage(join(fixture.dir, 'spare'), 'blue', 0)));
    const later = new Date(statSync(red).mtimeMs + 5000);
    utimesSync(red, later, later);
    rmSync(join(fixture.imagesDir, 'broken.jpg'));
    writeFileSync(join(fixture.imagesDir, 'broken.png'), readFileSync(await writeColorImage(join(fixture.dir, 'spare'), 'green', 1)));
    await runToEnd(client, fixture.config.temporal.taskQueue, fixture.config);
  }, 120_000);

  test('results, exports and the report show each image as it is now; --history shows every generation', async () => {
    const now = JSON.parse(cli(fixture, ['results', '--config', fixture.configFile, '--all', '-o', 'json']).stdout) as { uri: string; label: string }[];
    expect(now.map((r) => [r.uri.replace(/.*\//, ''), r.label]).sort()).toEqual([
      ['blue-002.bmp', 'blue'],
      ['broken.png', 'green'],
      ['green-001.jpg', 'green'],
      ['red-000.png', 'blue'],
    ]);
    expect(JSON.parse(cli(fixture, ['results', '--config', fixture.configFile, '--errors', '-o', 'json']).stdout)).toEqual([]);
    expect(JSON.parse(cli(fixture, ['results', '--config', fixture.configFile, '--label', 'red', '-o', 'json']).stdout)).toEqual([]);
    const history = JSON.parse(cli(fixture, ['results', '--config', fixture.configFile, '--all', '--history', '-o', 'json']).stdout) as { label: string }[];
    expect(history).toHaveLength(5); // red-000 was red once
    expect(JSON.parse(cli(fixture, ['results', '--config', fixture.configFile, '--errors', '--history', '-o', 'json']).stdout)).toHaveLength(1);
    const csv = join(fixture.dir, 'now.csv');
    expect(cli(fixture, ['export', '--config', fixture.configFile, '--format', 'csv', '--out', csv]).status).toBe(0);
    expect(readFileSync(csv, 'utf8').trim().split('\n')).toHaveLength(1 + 4);
    const report = join(fixture.dir, 'report.html');
    expect(cli(fixture, ['report', '--config', fixture.configFile, '--out', report]).status).toBe(0);
    expect(readFileSync(report, 'utf8')).toMatch(/<span id="predicted">4 predicted<\/span><span id="failed">0 failed<\/span>/);
  });

  test.each([
    ['the warehouse', (f: Fixture) => f.config.local.warehouse, /is the warehouse \(local\.warehouse\); writing there would destroy it/],
    ['the config', (f: Fixture) => f.configFile, /is the config; writing there would destroy it/],
    ['the model', (f: Fixture) => f.config.model.source, /is the model \(model\.source\)/],
    ['an image', (f: Fixture) => join(f.imagesDir, 'green-001.jpg'), /is matched by sourceUris .*: it would be listed as an image, or overwrite one/],
    [
      'a missing folder',
      (f: Fixture) => join(f.dir, 'no-such-folder', 'out.csv'),
      /the folder .*no-such-folder does not exist; create it or choose another --out/,
    ],
  ])('export and report refuse --out onto %s, write nothing, and exit 2', (_name, target, message) => {
    const out = target(fixture);
    const before = statSync(join(out, '..'), { throwIfNoEntry: false }) ? readOrNone(out) : undefined;
    for (const args of [
      ['export', '--config', fixture.configFile, '--format', 'csv', '--out', out],
      ['report', '--config', fixture.configFile, '--out', out],
    ]) {
      const result = cli(fixture, args);
      expect([result.status, result.stderr]).toEqual([2, expect.stringMatching(message)]);
      expect(result.stderr).toMatch(/nothing was written/);
    }
    expect(readOrNone(out)).toEqual(before);
    expect(cli(fixture, ['results', '--config', fixture.configFile, '-o', 'json']).status).toBe(0); // the warehouse still opens
  });

  test('a hint printed after a run names the config it was run with', () => {
    const summary = JSON.parse(cli(fixture, ['status', fixture.config.name, '-o', 'json']).stdout).summary as Parameters<typeof summaryText>[0];
    const text = summaryText({ ...summary, failed: 1, warnings: ['2 image(s) failed in earlier runs (objinfer results --errors lists them)'] }, 200, 'v.yaml');
    expect(text).toContain('(why: objinfer results --errors --config v.yaml)');
    expect(text).toContain('  warning: 2 image(s) failed in earlier runs (objinfer results --errors --config v.yaml lists them)');
  });
});

test('results piped into a reader that stops early (| head) ends quietly, with no stack trace', async () => {
  // More output than a pipe holds (64 KiB), so that the writer meets the closed pipe.
  const labels = Array.from({ length: 300 }, (_, i) => (['red', 'green', 'blue'] as const)[i % 3]!);
  const fixture = await makeFixture({ labels, taskQueue: uniqueQueue('epipe'), config: { batch: { size: 64, concurrency: 2, heartbeatTimeout: '5s' } } });
  await runToEnd(client, fixture.config.temporal.taskQueue, fixture.config);
  const full = cli(fixture, ['results', '--config', fixture.configFile, '--all', '-o', 'jsonl']);
  expect(full.stdout.length).toBeGreaterThan(100_000);
  const piped = cli(fixture, [], { shell: `${CLI} results --config ${fixture.configFile} --all -o jsonl | head -c 10 >/dev/null` });
  expect(piped.stderr).toBe('');
}, 120_000);

function readOrNone(path: string): string | undefined {
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return undefined;
  }
}

test('starting a pipeline that runs with another config attaches, and says what differs and how to run the new one', async () => {
  const fixture = await makeFixture({ labels: ['red'], taskQueue: uniqueQueue('attach-other') });
  const first = await startPipeline(client, fixture.config); // no worker: it stays running
  try {
    const other = { ...fixture.config, results: { ...fixture.config.results, topK: 2 }, batch: { ...fixture.config.batch, size: 8 } };
    const second = await startPipeline(client, other);
    expect(second.attached).toBe(true);
    expect(second.specDiffers).toEqual(['batch.size: 4 -> 8', 'results.topK: 5 -> 2']);
    expect((await startPipeline(client, fixture.config)).specDiffers).toBeUndefined();
  } finally {
    await first.handle.terminate('test over');
  }
});

test('an ONNX file of a newer IR version or opset than the bundled ONNX Runtime reads: what it reads, and how to re-save', async () => {
  const fixture = await makeFixture({ labels: [], taskQueue: 'unused' });
  const graph = {
    name: 'g',
    inputs: [{ name: 'x', dims: ['b', 4, 4, 3] }],
    outputs: [{ name: 'y', dims: ['b', 3] }],
    initializers: [],
    nodes: [{ opType: 'ReduceMean', inputs: ['x'], outputs: ['y'], intLists: { axes: [1, 2] }, ints: { keepdims: 0 } }],
  };
  writeFileSync(join(fixture.dir, 'ir14.onnx'), encodeModel(graph, 'onnx 1.20', { irVersion: 14 }));
  writeFileSync(join(fixture.dir, 'opset99.onnx'), encodeModel(graph, 'onnx 9', { irVersion: 11, opset: 99 }));
  const model = { ...fixture.config.model, labels: undefined };
  await expect(inspectOnnxModel({ ...model, source: join(fixture.dir, 'ir14.onnx') })).rejects.toThrow(
    /was saved with ONNX IR version 14; the bundled ONNX Runtime 1\.\d+\.\d+ reads IR versions up to 13 .*: re-save it with IR version 13 \(python: m = onnx\.load\(path\); m\.ir_version = 13/,
  );
  await expect(inspectOnnxModel({ ...model, source: join(fixture.dir, 'opset99.onnx') })).rejects.toThrow(
    /uses ai\.onnx opset 99; the bundled ONNX Runtime 1\.\d+\.\d+ supports opsets up to \d+: export it again with an opset of at most \d+/,
  );
  writeFileSync(join(fixture.dir, 'v.yaml'), readFileSync(fixture.configFile, 'utf8').replace('models/color-classifier.onnx', 'ir14.onnx'));
  const result = cli(fixture, ['run', '--config', 'v.yaml']);
  expect(result.status).toBe(2);
  expect(result.stderr).toMatch(/\n {2}fix or re-export the model \(or point model\.source at another\) and run again; nothing was changed\n$/);
});

test('a labels file naming a class twice is warned about before the run, with the classes it names', async () => {
  const fixture = await makeFixture({ labels: [], taskQueue: 'unused' });
  writeFileSync(join(fixture.dir, 'dupes.txt'), 'red\nred\nblue\nyellow\ncyan\nmagenta\nwhite\nblack\n');
  writeFileSync(join(fixture.dir, 'm.onnx'), colorClassifierOnnx());
  const checked = await inspectOnnxModel({ ...fixture.config.model, source: join(fixture.dir, 'm.onnx'), labels: join(fixture.dir, 'dupes.txt') });
  expect(checked.warnings).toContain('model.labels names "red" for classes 0, 1: counts by label add those classes together; make each label unique');
});

test('the demo counts the images it made apart from those added since', async () => {
  const fixture = await makeFixture({ labels: [], taskQueue: 'unused' });
  const dir = join(fixture.dir, 'demo');
  expect((await prepareDemo(dir)).added).toBe(0);
  writeFileSync(join(dir, 'images', 'mine.jpg'), CORRUPT_JPEG);
  const again = await prepareDemo(dir);
  expect([again.images.length, again.added]).toEqual([25, 1]);
});
