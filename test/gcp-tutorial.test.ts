/**
 * The tutorial's kind of model on the gcp backend (issues 29 and 31): a TensorFlow SavedModel
 * made by TensorFlow itself (input_1 float32 [-1, 224, 224, 3], 1001 logits), uploaded and
 * imported as the tutorial does. Nothing of the model's description is the stand-in's own:
 * the models API answers with the signature TensorFlow reads from the uploaded files, and
 * ML.PREDICT's outputs are TensorFlow running that SavedModel on each image, as decoded and
 * resized by TensorFlow (test/support/gcp/importedModel.ts). The softmax is objinfer's SQL,
 * run by the BigQuery emulator; the expectations are TensorFlow's (reference.py) and NumPy's.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkflowFailedError, type Client, type Connection } from '@temporalio/client';
import { scoresSql } from '../src/backends/gcp/sql';
import { tensorflowPython } from '../src/models/savedModel';
import { gcpFixture, startWorld, type GcpFixture, type GcpWorld } from './support/gcp/fixture';
import { PROJECT_ROOT } from './support/paths';
import { testClient } from './support/pipeline';
import { LABELS, writeImages } from './support/tutorial';

const SCRIPTS = join(PROJECT_ROOT, 'test', 'fixtures', 'savedmodel');

let world: GcpWorld;
let client: Client;
let connection: Connection;
let python: string;
let dir: string;
let savedModel: string;
let images: Record<string, Uint8Array>;
const fixtures: GcpFixture[] = [];

function tensorflow(script: string, ...args: string[]): string {
  const result = spawnSync(python, [join(SCRIPTS, script), ...args], { encoding: 'utf8', env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3' } });
  if (result.status !== 0) throw new Error(`${script}: ${result.stderr.slice(-2000)}`);
  return result.stdout;
}

beforeAll(async () => {
  world = await startWorld();
  ({ client, connection } = await testClient());
  python = await tensorflowPython((what) => console.error(`gcp tutorial test: ${what}`));
  dir = mkdtempSync(join(tmpdir(), 'objinfer-gcp-tutorial-'));
  savedModel = join(dir, 'resnet_like');
  tensorflow('make.py', savedModel);
  writeFileSync(join(dir, 'imagenet-labels.txt'), `${LABELS.join('\n')}\n`);
  const names = await writeImages(dir);
  images = Object.fromEntries(names.map((name) => [name, readFileSync(join(dir, name))]));
}, 900_000);

afterAll(async () => {
  await Promise.all(fixtures.map((f) => f.gateway.stop()));
  await world?.stop();
  await connection?.close();
});

async function fixture(config: Record<string, unknown> = {}): Promise<GcpFixture> {
  const model = { name: 'resnet50', type: 'TENSORFLOW', source: savedModel, labels: join(dir, 'imagenet-labels.txt'), inputSize: 224 };
  // One batch at a time: the emulator's storage fails concurrent scripts over 1001-element arrays
  // ("json: string unexpected end of JSON input"), an emulator fault, not BigQuery's.
  const f = await gcpFixture(world, client, {
    labels: [],
    extra: images,
    config: { model, results: { topK: 5, keepProbabilities: true }, batch: { size: 16, concurrency: 1, heartbeatTimeout: '60s' }, ...config },
  });
  fixtures.push(f);
  expect(f.gateway.violations).toEqual([]);
  return f;
}

test("the tutorial's SavedModel on gcp: its logits are read as such by the canary, and the stored top 5 and softmax scores are TensorFlow's", async () => {
  const f = await fixture();
  const summary = await f.run();
  expect(summary).toMatchObject({ predicted: 9, failed: 0, modelScores: 'logits', modelOutput: 'output_0' });
  expect(f.gateway.violations).toEqual([]);
  // The feature and output names in the statements are the ones TensorFlow read from the upload.
  expect(f.gateway.batchStatements.every((s) => s.includes(' AS input_1') && s.includes('p.output_0'))).toBe(true);
  const expected = JSON.parse(tensorflow('reference.py', savedModel, '224', '224', ...Object.keys(images).map((n) => join(dir, n)))) as Record<
    string,
    [number, number][]
  >;
  const rows = await f.rows<{ uri: string; top_k: { label: string; index: number; score: number }[]; probabilities: number[]; score: number }>(
    'SELECT uri, top_k, probabilities, score FROM DATASET.predictions ORDER BY uri',
  );
  expect(rows).toHaveLength(9);
  let worst = 0;
  for (const row of rows) {
    const name = row.uri.split('/').pop()!;
    const tf = expected[name]!;
    expect([name, row.top_k.map((t) => t.index)]).toEqual([name, tf.map(([index]) => index)]);
    expect(row.top_k.map((t) => t.label)).toEqual(tf.map(([index]) => LABELS[index]));
    row.top_k.forEach((t, k) => (worst = Math.max(worst, Math.abs(t.score - tf[k]![1]))));
    expect(row.score).toBe(row.top_k[0]!.score);
    // keepProbabilities keeps the raw outputs: logits, some of them negative.
    expect(row.probabilities).toHaveLength(1001);
    expect(Math.min(...row.probabilities)).toBeLessThan(0);
  }
  expect(worst).toBeLessThan(1e-12);
  console.log(`gcp tutorial: 9 images, largest softmax difference from TensorFlow's ${worst.toExponential(2)}`);
}, 900_000);

test('labels one short of the 1001 classes: the canary fails the run naming the background line, before any batch', async () => {
  const short = join(dir, 'imagenet-1000.txt');
  writeFileSync(short, `${LABELS.slice(1).join('\n')}\n`);
  const f = await fixture();
  const failure = await f.run({ model: { labels: short } }).catch((error: unknown) => error);
  expect(failure).toBeInstanceOf(WorkflowFailedError);
  expect(String(((failure as WorkflowFailedError).cause?.cause as Error | undefined)?.message)).toMatch(
    /has 1000 labels but output "output_0" .* has 1001 classes: one more, as ImageNet models with a background class first have .*add a first line "background"/,
  );
  expect(f.gateway.batchStatements).toEqual([]);
  expect(f.gateway.canaryStatements).toHaveLength(1);
}, 900_000);

test("the SQL softmax equals NumPy's within 1e-12 on float64, large and tied logits included (run by the emulator)", async () => {
  const rows = [[1, 2, 3], [1000, -1000, 0, 999.5], [-1e300, 0, 1e300], [0.5, 0.5, 0.5, 0.5], Array.from({ length: 1001 }, (_, i) => Math.sin(i) * 30)];
  const script =
    'import json, sys, numpy as np\nfor row in json.load(sys.stdin):\n    x = np.array(row, dtype=np.float64); e = np.exp(x - x.max()); print(json.dumps((e / e.sum()).tolist()))';
  const result = spawnSync(python, ['-c', script], { input: JSON.stringify(rows), encoding: 'utf8' });
  const numpy = result.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as number[]);
  for (const [r, row] of rows.entries()) {
    const array = `[${row.map((v) => `CAST(${String(v)} AS FLOAT64)`).join(', ')}]`;
    const [answer] = await world.emulator.direct.query({
      query: `SELECT ${scoresSql('t.x', 'logits')} AS p FROM (SELECT ${array} AS x) AS t`,
      useLegacySql: false,
    });
    const ours = (answer[0] as { p: number[] }).p;
    expect(ours).toHaveLength(row.length);
    ours.forEach((p, i) => expect(Math.abs(p - numpy[r]![i]!)).toBeLessThanOrEqual(1e-12));
  }
});
