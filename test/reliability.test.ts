/**
 * Reliability, round two (the local backend, on the real dev server): nothing in a user's
 * files or a model's scores takes a run down. Confident, broken and unusual models; image
 * bombs; files too large to read; warehouses deleted, locked or read-only; files replaced
 * under an unchanged mtime or during a run; objects that cannot be read for a moment;
 * symbolic links; labels files saved anew.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client, Connection } from '@temporalio/client';
import sharp from 'sharp';
import { createBackend } from '../src/backends';
import type { Backend } from '../src/backends/port';
import { startPipeline, waitForResult } from '../src/client';
import { colorLabelsFile } from '../src/models/colorClassifier';
import type { RunSpec } from '../src/config';
import { channelModel, constantScoresModel, multiOutputModel, rank3OutputModel } from './support/models';
import { pngBomb } from './support/hostile';
import { CLI } from './support/paths';
import { failureOf, makeFixture, query, testClient, testServer, uniqueQueue, withWorker, type Fixture } from './support/pipeline';

let client: Client;
let connection: Connection;
beforeAll(async () => ({ client, connection } = await testClient()));
afterAll(() => connection.close());

const solid = (width: number, height: number, r: number, g: number, b: number) => sharp({ create: { width, height, channels: 3, background: { r, g, b } } });

async function writePng(path: string, r: number, g: number, b: number, size = 8): Promise<void> {
  await solid(size, size, r, g, b).png().toFile(path);
}

/** A fixture whose images are solid PNGs and whose model is `model` (8x8 input) with these labels. */
async function modelFixture(
  name: string,
  model: Buffer,
  labels: string[] | undefined,
  images: Record<string, [number, number, number]>,
  config: Record<string, unknown> = {},
): Promise<Fixture> {
  const taskQueue = uniqueQueue(name);
  const { model: _model, ...rest } = config; // the model's settings go into the spec below
  const fixture = await makeFixture({ labels: [], taskQueue, config: rest });
  writeFileSync(join(fixture.dir, 'models', `${name}.onnx`), model);
  if (labels) writeFileSync(join(fixture.dir, 'models', `${name}.labels.txt`), labels.join('\n'));
  for (const [file, [r, g, b]] of Object.entries(images)) await writePng(join(fixture.imagesDir, file), r, g, b);
  const spec: RunSpec = {
    ...fixture.config,
    model: {
      ...fixture.config.model,
      source: join(fixture.dir, 'models', `${name}.onnx`),
      labels: labels ? join(fixture.dir, 'models', `${name}.labels.txt`) : undefined,
      output: (config.model as { output?: string } | undefined)?.output,
      scores: (config.model as { scores?: RunSpec['model']['scores'] } | undefined)?.scores ?? fixture.config.model.scores,
    },
  };
  return { ...fixture, config: spec };
}

async function run(spec: RunSpec, backendFor?: (s: RunSpec) => Backend) {
  return withWorker(
    spec.temporal.taskQueue,
    async () => {
      const { workflowId } = await startPipeline(client, spec);
      return waitForResult(client, workflowId);
    },
    backendFor,
  );
}

interface Result {
  uri: string;
  label: string;
  score: number;
  top_k: { label: string; index: number; score: number }[];
  probabilities: number[] | null;
}

const results = (spec: RunSpec) =>
  query<Result & Record<string, unknown>>(spec, `SELECT uri, label, score, top_k, probabilities FROM objinfer_test.predictions ORDER BY uri`);
const errors = (spec: RunSpec) =>
  query<{ uri: string; error: string; kind: string }>(spec, 'SELECT uri, error, kind FROM objinfer_test.predictions_errors ORDER BY uri');
const name = (uri: string) => uri.split('/').pop();

describe('a confident, broken or unusual model', () => {
  // Declared probabilities (model.scores): stored as the model gives them, whatever they sum to.
  const asGiven = { scores: 'probabilities' };

  test('a top score of exactly 1 followed by fractions, declared probabilities, is stored as given (it used to fail every batch)', async () => {
    const f = await modelFixture(
      'saturated',
      constantScoresModel([1, 0.25, 0]),
      ['a', 'b', 'c'],
      { 'x.png': [10, 10, 10], 'y.png': [200, 0, 0] },
      { results: { topK: 3, keepProbabilities: true }, model: asGiven },
    );
    const summary = await run(f.config);
    expect(summary).toMatchObject({ predicted: 2, failed: 0 });
    for (const row of await results(f.config)) {
      expect(row.label).toBe('a');
      expect(row.score).toBe(1);
      expect(row.top_k).toEqual([
        { label: 'a', index: 0, score: 1 },
        { label: 'b', index: 1, score: 0.25 },
        { label: 'c', index: 2, score: 0 },
      ]);
      expect(row.probabilities).toEqual([1, 0.25, 0]);
    }
  });

  test('integer and negative scores declared probabilities rank as numbers: the highest wins, stored exactly', async () => {
    const f = await modelFixture(
      'logits',
      constantScoresModel([3, -2, 7, -1e30]),
      ['w', 'x', 'y', 'z'],
      { 'a.png': [1, 2, 3] },
      { results: { topK: 4 }, model: asGiven },
    );
    await run(f.config);
    const [row] = await results(f.config);
    expect(row!.top_k.map((t) => [t.label, t.score])).toEqual([
      ['y', 7],
      ['w', 3],
      ['x', -2],
      ['z', Math.fround(-1e30)],
    ]);
  });

  test('the same scores, left to objinfer, are read as logits: ranked by their softmax, the raw outputs kept, the summary says so', async () => {
    const f = await modelFixture(
      'auto_logits',
      constantScoresModel([3, -2, 7, -1e30]),
      ['w', 'x', 'y', 'z'],
      { 'a.png': [1, 2, 3] },
      { results: { topK: 4, keepProbabilities: true } },
    );
    expect(await run(f.config)).toMatchObject({ modelScores: 'logits', predicted: 1 });
    const [row] = await results(f.config);
    expect(row!.top_k.map((t) => t.label)).toEqual(['y', 'w', 'x', 'z']);
    const total = row!.top_k.reduce((sum, t) => sum + t.score, 0);
    expect(Math.abs(total - 1)).toBeLessThan(1e-12); // probabilities now (NumPy's softmax is checked in tensorflow.test.ts)
    expect(row!.score).toBeCloseTo(Math.exp(7) / (Math.exp(7) + Math.exp(3) + Math.exp(-2)), 12);
    expect(row!.probabilities).toEqual([3, -2, 7, Math.fround(-1e30)]);
  });

  test('NaN scores are an error for that image, with the reason; finite ones are predicted', async () => {
    // sqrt(channel - 0.5): white is finite everywhere; red has NaN in green and blue.
    const f = await modelFixture('nan', channelModel('sqrt-half'), ['red', 'green', 'blue'], { 'white.png': [255, 255, 255], 'red.png': [255, 0, 0] });
    const summary = await run(f.config);
    expect(summary).toMatchObject({ predicted: 1, failed: 1 });
    expect((await results(f.config)).map((r) => name(r.uri))).toEqual(['white.png']);
    expect(await errors(f.config)).toEqual([
      {
        uri: expect.stringMatching(/red\.png$/),
        kind: 'permanent',
        error: 'the model\'s output "scores" holds NaN at class 1, NaN at class 2 for this image; it cannot be ranked',
      },
    ]);
  });

  test('infinite scores are an error for that image; an all-zero one is predicted', async () => {
    // log(channel): black is -Infinity everywhere; white is 0 everywhere.
    const f = await modelFixture(
      'inf',
      channelModel('log'),
      ['red', 'green', 'blue'],
      { 'black.png': [0, 0, 0], 'white.png': [255, 255, 255] },
      { model: asGiven },
    );
    const summary = await run(f.config);
    expect(summary).toMatchObject({ predicted: 1, failed: 1 });
    expect((await errors(f.config))[0]!.error).toMatch(/holds -Infinity at class 0, -Infinity at class 1, -Infinity at class 2 for this image/);
    const [white] = await results(f.config);
    expect(white!.top_k.map((t) => [t.index, t.score])).toEqual([
      [0, 0],
      [1, 0],
      [2, 0],
    ]);
  });

  test('a model with several outputs: the one with a score per label is used, and the summary names it', async () => {
    const f = await modelFixture('multi', multiOutputModel(), ['dark', 'bright'], { 'black.png': [0, 0, 0], 'white.png': [255, 255, 255] });
    const summary = await run(f.config);
    expect(summary.modelOutput).toBe('logits');
    expect(summary.warnings.join('\n')).not.toMatch(/error/);
    expect((await results(f.config)).map((r) => [name(r.uri), r.label])).toEqual([
      ['black.png', 'bright'],
      ['white.png', 'dark'],
    ]);
  });

  test('model.output chooses another output, and changes the prediction version', async () => {
    const f = await modelFixture('multi2', multiOutputModel(), ['dark', 'bright'], { 'white.png': [255, 255, 255] });
    const first = await run(f.config);
    const chosen = await run({ ...f.config, model: { ...f.config.model, output: 'probabilities' } });
    expect(chosen.modelOutput).toBe('probabilities');
    expect(chosen.modelVersion).not.toBe(first.modelVersion);
    expect(chosen.predicted).toBe(1);
  });

  test('an output that is not [batch, classes] is refused before inference, naming its shape', async () => {
    const f = await modelFixture('rank3', rank3OutputModel(), undefined, { 'a.png': [1, 1, 1] });
    const cause = await failureOf(run(f.config));
    expect(cause.type).toBe('ModelShapeMismatch');
    expect(cause.message).toBe('model output "grid" is float32 [batch, 8, 3]; objinfer reads class scores from a float [batch, classes] output');
  });
});

describe('image bombs and files too large to read', () => {
  test('a PNG whose header claims 40000x40000 goes to the errors table; the other images are predicted', async () => {
    const f = await makeFixture({ labels: ['red', 'blue'], taskQueue: uniqueQueue('bomb') });
    writeFileSync(join(f.imagesDir, 'bomb.png'), pngBomb(40_000, 40_000, Buffer.alloc(64)));
    const summary = await run(f.config);
    expect(summary).toMatchObject({ predicted: 2, failed: 1 });
    expect((await errors(f.config))[0]!.error).toMatch(/image is 40000x40000 = 1600000000 pixels; objinfer decodes at most 100000000 pixels/);
  });

  test('a 2.5 GB file in the image folder is refused by its size alone, without being read', async () => {
    const f = await makeFixture({ labels: ['green'], taskQueue: uniqueQueue('huge') });
    execFileSync('truncate', ['-s', '2500M', join(f.imagesDir, 'huge.png')]); // sparse: no disk used
    const summary = await run(f.config);
    expect(summary).toMatchObject({ objectsSeen: 2, predicted: 1, failed: 1 });
    expect((await errors(f.config))[0]).toMatchObject({
      uri: expect.stringMatching(/huge\.png$/),
      error: 'image is 2621440000 bytes; DECODE_IMAGE accepts at most 10000000 bytes (10 MB)',
    });
    const [object] = await query<{ md5_hash: string | null }>(f.config, "SELECT md5_hash FROM objinfer_test.images WHERE uri LIKE '%huge.png'");
    expect(object!.md5_hash).toBeNull();
  });
});

describe('files that change, vanish or are links', () => {
  test('bytes replaced under the same mtime (touch -r) are a new generation and are classified again', async () => {
    const f = await makeFixture({ labels: ['red'], taskQueue: uniqueQueue('touch') });
    const [file] = ['red-000.png'].map((n) => join(f.imagesDir, n));
    await run(f.config);
    expect((await results(f.config))[0]!.label).toBe('red');
    const before = (await query<{ generation: bigint }>(f.config, 'SELECT generation FROM objinfer_test.images'))[0]!.generation;
    copyFileSync(file!, `${file}.orig`);
    await solid(48, 64, 0, 0, 240).png().toFile(file!); // now blue
    execFileSync('touch', ['-r', `${file}.orig`, file!]); // with the old mtime
    rmSync(`${file}.orig`);
    const second = await run(f.config);
    expect(second).toMatchObject({ predicted: 1, alreadyDone: 0 });
    const rows = await query<{ generation: bigint; label: string }>(f.config, 'SELECT generation, label FROM objinfer_test.predictions ORDER BY generation');
    expect(rows.map((r) => r.label)).toEqual(['red', 'blue']);
    expect(rows[1]!.generation).toBeGreaterThan(before);
  });

  test('a metadata-only change (chmod) keeps the generation: nothing is classified again', async () => {
    const f = await makeFixture({ labels: ['red'], taskQueue: uniqueQueue('chmod') });
    await run(f.config);
    chmodSync(join(f.imagesDir, 'red-000.png'), 0o600);
    expect(await run(f.config)).toMatchObject({ predicted: 0, alreadyDone: 1 });
  });

  test('an object that could not be read now is a transient failure, retried by the next run', async () => {
    const f = await makeFixture({ labels: ['red', 'green'], taskQueue: uniqueQueue('transient') });
    const victim = join(
      f.imagesDir,
      readdirSync(f.imagesDir).find((n) => n.startsWith('green'))!,
    );
    // Moved away after the listing, as a sync tool might; put back before the next run.
    const movingAway = (spec: RunSpec): Backend => {
      const backend = createBackend(spec);
      const predict = backend.predictBatch.bind(backend);
      backend.predictBatch = async (...args) => {
        if (existsSync(victim)) renameSync(victim, `${victim}.away`);
        return predict(...args);
      };
      return backend;
    };
    const first = await run(f.config, movingAway);
    expect(first).toMatchObject({ predicted: 1, failed: 1 });
    expect(await errors(f.config)).toEqual([
      { uri: expect.stringMatching(/green-001\.jpg$/), kind: 'transient', error: expect.stringMatching(/^cannot read the object now \(ENOENT\)/) },
    ]);
    renameSync(`${victim}.away`, victim);
    const second = await run(f.config);
    expect(second).toMatchObject({ predicted: 1, failedBefore: 0, alreadyDone: 1 });
    expect(await errors(f.config)).toEqual([]);
    expect((await results(f.config)).map((r) => r.label).sort()).toEqual(['green', 'red']);
  });

  test('a file replaced during the run is not predicted under its old generation; the next run classifies the new bytes', async () => {
    const f = await makeFixture({ labels: ['red'], taskQueue: uniqueQueue('replaced') });
    const file = join(f.imagesDir, 'red-000.png');
    const replacing = (spec: RunSpec): Backend => {
      const backend = createBackend(spec);
      const predict = backend.predictBatch.bind(backend);
      backend.predictBatch = async (...args) => {
        await solid(48, 64, 20, 200, 20).png().toFile(`${file}.new`);
        renameSync(`${file}.new`, file);
        return predict(...args);
      };
      return backend;
    };
    expect(await run(f.config, replacing)).toMatchObject({ predicted: 0, failed: 1 });
    expect((await errors(f.config))[0]).toMatchObject({ kind: 'transient', error: 'changed since it was listed; the next run classifies its new content' });
    expect(await run(f.config)).toMatchObject({ predicted: 1 });
    expect((await results(f.config)).map((r) => r.label)).toEqual(['green']);
  });

  test('symbolic links are followed to files and folders; a loop is reported, not followed', async () => {
    const f = await makeFixture({ labels: ['red'], taskQueue: uniqueQueue('links') });
    const elsewhere = join(f.dir, 'elsewhere');
    mkdirSync(join(elsewhere, 'nested'), { recursive: true });
    await writePng(join(elsewhere, 'blue.png'), 0, 0, 240, 32);
    await writePng(join(elsewhere, 'nested', 'green.png'), 0, 240, 0, 32);
    symlinkSync(join(elsewhere, 'blue.png'), join(f.imagesDir, 'linked-blue.png'));
    symlinkSync(join(elsewhere, 'nested'), join(f.imagesDir, 'linked-folder'));
    symlinkSync(f.imagesDir, join(f.imagesDir, 'loop'));
    symlinkSync(join(f.dir, 'nowhere.png'), join(f.imagesDir, 'dangling.png'));
    const summary = await run(f.config);
    expect(summary).toMatchObject({ objectsSeen: 3, predicted: 3, failed: 0 });
    expect((await results(f.config)).map((r) => [r.uri.slice(r.uri.indexOf('/images/') + 8), r.label])).toEqual([
      ['linked-blue.png', 'blue'],
      ['linked-folder/green.png', 'green'],
      ['red-000.png', 'red'],
    ]);
    expect(summary.warnings).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/loop leads to a folder already listed .* not followed again/),
        expect.stringMatching(/broken symlink .*dangling\.png: skipped/),
      ]),
    );
  });

  test('a labels file saved again with CRLF line endings and a trailing newline is the same prediction version', async () => {
    const f = await makeFixture({ labels: ['red'], taskQueue: uniqueQueue('crlf') });
    const first = await run(f.config);
    writeFileSync(f.config.model.labels!, `\uFEFF${colorLabelsFile().trim().split('\n').join('\r\n')}\r\n\r\n`);
    const second = await run(f.config);
    expect(second.modelVersion).toBe(first.modelVersion);
    expect(second).toMatchObject({ predicted: 0, alreadyDone: 1 });
  });
});

describe('the warehouse', () => {
  test('a long-lived worker goes on after the warehouse file is deleted and made anew', async () => {
    const f = await makeFixture({ labels: ['red'], taskQueue: uniqueQueue('rewarehouse') });
    const summaries = await withWorker(f.config.temporal.taskQueue, async () => {
      const once = async () => waitForResult(client, (await startPipeline(client, f.config)).workflowId);
      const first = await once();
      rmSync(f.config.local.warehouse);
      rmSync(`${f.config.local.warehouse}.wal`, { force: true });
      return [first, await once()];
    });
    expect(summaries.map((s) => s.predicted)).toEqual([1, 1]);
  });

  test('a warehouse that cannot be written fails the run at once, naming the file, with no retries', async () => {
    const f = await makeFixture({ labels: ['red'], taskQueue: uniqueQueue('readonly') });
    await run(f.config);
    const file = f.config.local.warehouse;
    const root = process.getuid?.() === 0;
    // Root writes anything: make the file immutable instead of read-only.
    if (root) execFileSync('chattr', ['+i', file]);
    else chmodSync(file, 0o444);
    try {
      const started = Date.now();
      const cause = await failureOf(run(f.config));
      expect(cause.type).toBe('PermissionDenied');
      expect(cause.message).toMatch(
        new RegExp(`^cannot open the warehouse ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} for writing: .*give the user the worker runs as write access`),
      );
      expect(Date.now() - started).toBeLessThan(20_000);
    } finally {
      if (root) execFileSync('chattr', ['-i', file]);
      else chmodSync(file, 0o644);
    }
  });

  test('a warehouse locked by another process: `objinfer run` shows who holds it while it waits', async () => {
    const f = await makeFixture({ labels: ['red'], taskQueue: uniqueQueue('locked') });
    await run(f.config);
    const locker = spawn(
      'node',
      [
        '-e',
        `
      const { DuckDBInstance } = require(${JSON.stringify(require.resolve('@duckdb/node-api'))});
      DuckDBInstance.create(${JSON.stringify(f.config.local.warehouse)}).then(() => { console.log('holding'); setTimeout(() => process.exit(0), 12000); });
    `,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((ready) => locker.stdout.once('data', () => ready()));
    await writePng(join(f.imagesDir, 'new.png'), 250, 0, 0);
    const result = spawnSync(CLI, ['run', '--config', f.configFile], {
      env: { ...process.env, TEMPORAL_ADDRESS: testServer().address, OBJINFER_HOME: join(f.dir, 'state') },
      encoding: 'utf8',
      timeout: 90_000,
    });
    expect(result.status).toBe(0);
    expect(result.stderr).toMatch(new RegExp(`waiting: \\w+: the warehouse .* is locked by another process \\(PID ${locker.pid}, .*\\); waiting for it`));
  }, 120_000);
});
