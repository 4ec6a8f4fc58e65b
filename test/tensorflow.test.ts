/**
 * The tutorial's kind of model on the local backend (issue 31): a TensorFlow SavedModel that
 * outputs logits over 1001 ImageNet classes (background first), made here by TensorFlow
 * itself (test/fixtures/savedmodel/make.py). The expectations are TensorFlow's too: the same
 * SavedModel run by TensorFlow on the images as tf.io.decode_image and tf.image.resize read
 * them, with a softmax over its logits (reference.py). TensorFlow comes from objinfer's own
 * installer (models/savedModel.ts), as a user's first run would get it.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client, Connection } from '@temporalio/client';
import { inspectModel } from '../src/backends';
import { inspectOnnxModel } from '../src/backends/local/modelCheck';
import { loadConfig, parseConfig } from '../src/config';
import { convertSavedModel, savedModelSignature, tensorflowPython } from '../src/models/savedModel';
import { softmax } from '../src/backends/common/model';
import { seededRandom } from '../src/models';
import { PROJECT_ROOT } from './support/paths';
import { LABELS, writeImages } from './support/tutorial';
import { makeFixture, query, runToEnd, testClient, uniqueQueue, type Fixture } from './support/pipeline';

const SCRIPTS = join(PROJECT_ROOT, 'test', 'fixtures', 'savedmodel');

let client: Client;
let connection: Connection;
let python: string;
let fixture: Fixture;
let savedModel: string;

function tensorflow(script: string, ...args: string[]): string {
  const result = spawnSync(python, [join(SCRIPTS, script), ...args], { encoding: 'utf8', env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3' } });
  if (result.status !== 0) throw new Error(`${script}: ${result.stderr.slice(-2000)}`);
  return result.stdout;
}

beforeAll(async () => {
  ({ client, connection } = await testClient());
  python = await tensorflowPython((what) => console.error(`tensorflow test: ${what}`));
  fixture = await makeFixture({ labels: [], taskQueue: uniqueQueue('savedmodel') });
  savedModel = join(fixture.dir, 'resnet_like');
  tensorflow('make.py', savedModel);
  writeFileSync(join(fixture.dir, 'imagenet-labels.txt'), `${LABELS.join('\n')}\n`);
}, 900_000);
afterAll(() => connection.close());

function configFor(name: string, extra: Record<string, unknown> = {}): Fixture['config'] {
  const file = join(fixture.dir, `${name}.yaml`);
  writeFileSync(
    file,
    JSON.stringify({
      name: `${fixture.config.name}-${name}`,
      dataset: `tf_${name}`,
      bucket: 'objinfer-test-models',
      objectTable: 'images',
      sourceUris: ['images/*'],
      model: { name: 'resnet_like', type: 'TENSORFLOW', source: 'resnet_like', labels: 'imagenet-labels.txt' },
      results: { topK: 5 },
      batch: { size: 8, concurrency: 2, heartbeatTimeout: '30s' },
      local: { warehouse: `${name}.duckdb`, storage: 'storage' },
      temporal: { taskQueue: fixture.config.temporal.taskQueue },
      ...extra,
    }),
  );
  return loadConfig(file);
}

test("TensorFlow reads the SavedModel's serving signature: input_1 float32 [-1, 224, 224, 3], 1001 logits", async () => {
  expect(await savedModelSignature(savedModel)).toEqual({
    inputs: [{ name: 'input_1', dtype: 'float32', shape: [-1, 224, 224, 3] }],
    outputs: [{ name: 'output_0', dtype: 'float32', shape: [-1, 1001] }],
  });
});

test("the SavedModel runs on the local backend: each image's top 5 and their softmax scores are TensorFlow's (PNG, JPEG, BMP)", async () => {
  const names = await writeImages(fixture.imagesDir);
  const config = configFor('run');
  const summary = await runToEnd(client, fixture.config.temporal.taskQueue, config);
  expect(summary).toMatchObject({ predicted: names.length, failed: 0, modelScores: 'logits', modelOutput: 'output_0' });
  const expected = JSON.parse(tensorflow('reference.py', savedModel, '224', '224', ...names.map((n) => join(fixture.imagesDir, n)))) as Record<
    string,
    [number, number][]
  >;
  const rows = await query<{ uri: string; top_k: { label: string; index: number; score: number }[] }>(
    config,
    'SELECT uri, top_k FROM tf_run.predictions ORDER BY uri',
  );
  expect(rows).toHaveLength(names.length);
  let worst = 0;
  for (const row of rows) {
    const name = row.uri.replace(/.*\//, '');
    const tf = expected[name]!;
    expect([name, row.top_k.map((t) => t.index)]).toEqual([name, tf.map(([index]) => index)]);
    expect(row.top_k.map((t) => t.label)).toEqual(tf.map(([index]) => LABELS[index]));
    row.top_k.forEach((t, k) => (worst = Math.max(worst, Math.abs(t.score - tf[k]![1]))));
  }
  expect(worst).toBeLessThan(1e-4);
  console.log(`tensorflow: ${rows.length} images, largest score difference from TensorFlow ${worst.toExponential(2)}`);
}, 600_000);

test('the conversion is made once per SavedModel content: another pipeline reuses it, with the same prediction version', async () => {
  const first = configFor('run');
  const second = configFor('again');
  const summary = await runToEnd(client, fixture.config.temporal.taskQueue, second);
  expect(summary.provisioned.find((p) => p.step === 'upload model')?.detail).toMatch(
    /\(SavedModel, as ONNX: converted before, within \d\.\de-?\d+ of TensorFlow\)/,
  );
  const version = async (config: Fixture['config']) =>
    (await query<{ v: string }>(config, `SELECT DISTINCT model_version AS v FROM ${config.dataset}.predictions`)).map((r) => r.v);
  expect(await version(second)).toEqual(await version(first));
}, 600_000);

test('labels one short of the classes (ImageNet without its background line): the error says which line to add', async () => {
  writeFileSync(join(fixture.dir, 'imagenet-1000.txt'), `${LABELS.slice(1).join('\n')}\n`);
  const model = { ...configFor('run').model, labels: join(fixture.dir, 'imagenet-1000.txt') };
  await expect(inspectOnnxModel(model)).rejects.toThrow(
    /has 1000 labels but output "output_0" of .*resnet_like has 1001 classes: one more, as ImageNet models with a background class first have .*: add a first line "background"/,
  );
});

test('a conversion whose outputs differ from TensorFlow is refused, naming the difference, and not cached', async () => {
  const other = join(fixture.dir, 'other_model');
  tensorflow('make.py', other, '7');
  const skewed = async () => ({ output_0: new Float32Array(4 * 1001).fill(0.5) });
  await expect(convertSavedModel(other, skewed)).rejects.toThrow(/the ONNX conversion differs from TensorFlow on output "output_0" \(value 0: 0\.5 against /);
  const honest = await convertSavedModel(other, async (onnx, input, shape) => {
    const ort = await import('onnxruntime-node');
    const session = await ort.InferenceSession.create(onnx);
    const out = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', input, shape) });
    return { output_0: Float32Array.from(out[session.outputNames[0]!]!.data as Float32Array) };
  });
  expect(honest.converted).toBe(true); // the refused one left nothing behind
}, 600_000);

test("objinfer's softmax equals NumPy's within 1e-12 on float64, large and tied logits included", () => {
  const random = seededRandom(12);
  const rows = [
    Array.from({ length: 1001 }, () => 20 * (random() - 0.5)),
    Array.from({ length: 1001 }, () => 2000 * (random() - 0.5)), // exp would overflow without the max subtracted
    [3, 3, 3, 1],
    [-1e300, 0, 1e-300],
  ];
  const script =
    'import json, sys, numpy as np\nfor row in json.load(sys.stdin):\n    x = np.array(row, dtype=np.float64); e = np.exp(x - x.max()); print(json.dumps((e / e.sum()).tolist()))';
  const result = spawnSync(python, ['-c', script], { input: JSON.stringify(rows), encoding: 'utf8' });
  expect(result.stderr).toBe('');
  const numpy = result.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as number[]);
  rows.forEach((row, r) => {
    const ours = softmax(row);
    ours.forEach((p, i) => expect(Math.abs(p - numpy[r]![i]!)).toBeLessThanOrEqual(1e-12));
  });
});

describe('on gcp, the SavedModel is checked against BigQuery before anything is uploaded', () => {
  const gcpSpec = (source: string) =>
    parseConfig(
      {
        backend: 'gcp',
        project: 'objinfer-test',
        dataset: 'd',
        bucket: 'objinfer-models',
        objectTable: 'images',
        sourceUris: ['gs://cloud-samples-data/vision/*.jpg'],
        model: { name: 'resnet', type: 'TENSORFLOW', source, labels: join(fixture.dir, 'imagenet-labels.txt') },
      },
      fixture.dir,
    );

  test("the tutorial's shape is accepted, its input size and output read from the signature", async () => {
    expect(await inspectModel(gcpSpec(savedModel))).toEqual({ inputSize: [224, 224], outputName: 'output_0', warnings: [] });
  });

  test.each([
    [
      'a fixed batch of 8',
      ['8'],
      /^model input "input_1" has a fixed batch dimension of 8 \(\[8, 224, 224, 3\]\); BigQuery and objinfer take models whose batch dimension is dynamic/,
    ],
    [
      'a uint8 input',
      ['none', 'uint8'],
      /^model input "input_1" is uint8 \[batch, 224, 224, 3\]; objinfer feeds float32 NHWC images .* \(this one is uint8\): export it with a float32 input/,
    ],
  ])(
    '%s is refused, naming what to change',
    async (_name, variant, message) => {
      const dir = join(fixture.dir, `variant-${variant.join('-')}`);
      tensorflow('make.py', dir, '5', ...variant);
      await expect(inspectModel(gcpSpec(dir))).rejects.toThrow(message);
    },
    300_000,
  );

  test('one over 450 MB is refused before TensorFlow even reads it', async () => {
    const big = join(fixture.dir, 'big_model');
    spawnSync('cp', ['-r', savedModel, big]);
    spawnSync('truncate', ['-s', '451M', join(big, 'variables', 'variables.data-00000-of-00001')]); // sparse: no disk used
    await expect(inspectModel(gcpSpec(big))).rejects.toThrow(/is 451 MiB; BigQuery imports TensorFlow models of at most 450 MB/);
  });
});
