/**
 * An adversary, generated: random images of extreme sizes and formats, truncated and
 * bit-flipped files, random bytes, header bombs, a random model whose scores are exact
 * integers, huge, negative or not finite, random labels, and random file changes between
 * runs. Whatever it draws, every run completes and every object listed ends up exactly once
 * in the results or the errors, with the rows consistent with the model's scores.
 *
 * The seed is in the suite's name; rerun a failure with OBJINFER_SEED=<seed>.
 */
import { randomBytes } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client, Connection } from '@temporalio/client';
import { startPipeline, waitForResult } from '../src/client';
import type { RunSpec } from '../src/config';
import { encodeImage, type DemoFormat } from '../src/demo/images';
import { encodeModel, type NodeSpec } from '../src/models/onnxWriter';
import { seededRandom } from '../src/models/random';
import type { PipelineSummary } from '../src/workflows/contract';
import { pngBomb } from './support/hostile';
import { makeFixture, query, testClient, uniqueQueue, withWorker, type Fixture } from './support/pipeline';

const SEED = Number(process.env.OBJINFER_SEED ?? Math.floor(Math.random() * 2 ** 31));

const random = seededRandom(SEED);
const int = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
const pick = <T>(values: readonly T[]): T => values[Math.floor(random() * values.length)]!;

/** What an object was made as: `invalid` ones can never decode; the others may. */
type Kind = 'valid' | 'truncated' | 'bit-flipped' | 'random-bytes' | 'bomb' | 'empty';
const INVALID: ReadonlySet<Kind> = new Set(['random-bytes', 'bomb', 'empty']);

const SIDES = [1, 2, 3, 7, 64, 257, 1500, 3000] as const;

async function validImage(): Promise<{ bytes: Buffer; format: DemoFormat }> {
  const format = pick<DemoFormat>(['png', 'jpg', 'bmp']);
  const [height, width] =
    random() < 0.3
      ? pick([
          [1, 3000],
          [3000, 1],
          [2, 1500],
        ] as const)
      : [pick(SIDES), pick(SIDES)];
  const pixels = new Uint8Array(height * width * 3);
  if (random() < 0.5) pixels.fill(pick([0, 1, 127, 254, 255]));
  else for (let i = 0; i < pixels.length; i++) pixels[i] = int(0, 255);
  return { bytes: await encodeImage(pixels, height, width, format), format };
}

const bomb = () => pngBomb(int(20_000, 60_000), int(20_000, 60_000), randomBytes(int(0, 64)));

async function hostileFile(): Promise<{ kind: Kind; bytes: Buffer; extension: string }> {
  const kind = pick<Kind>(['valid', 'valid', 'valid', 'truncated', 'bit-flipped', 'random-bytes', 'bomb', 'empty']);
  if (kind === 'random-bytes')
    return { kind, bytes: Buffer.from(Array.from({ length: int(1, 4096) }, () => int(0, 255))), extension: pick(['png', 'jpg', 'bmp']) };
  if (kind === 'bomb') return { kind, bytes: bomb(), extension: 'png' };
  if (kind === 'empty') return { kind, bytes: Buffer.alloc(0), extension: pick(['png', 'jpg']) };
  const { bytes, format } = await validImage();
  if (kind === 'truncated') return { kind, bytes: bytes.subarray(0, int(1, bytes.length - 1)), extension: format };
  if (kind === 'bit-flipped') {
    const flipped = Buffer.from(bytes);
    for (let n = int(1, 8); n > 0; n--) flipped[int(0, flipped.length - 1)]! ^= 1 << int(0, 7);
    return { kind, bytes: flipped, extension: format };
  }
  return { kind, bytes, extension: format };
}

const MAGNITUDES = [0, 1, -1, 2, -3, 0.5, 1e6, -1e6, 1e30, -1e30, 7] as const;

/**
 * scores = (mean colour x W + b) / d: weights and biases drawn from exact integers, huge and
 * negative values; a divisor of 0 (drawn now and then) makes a class +-Infinity or NaN.
 */
function randomModel(classes: number, size: number): { model: Buffer; divisorZero: boolean } {
  const weights = Float32Array.from({ length: 3 * classes }, () => pick(MAGNITUDES));
  const bias = Float32Array.from({ length: classes }, () => pick(MAGNITUDES));
  const divisor = Float32Array.from({ length: classes }, () => pick([1, 1, 1, 2, 0.25]));
  const divisorZero = random() < 0.25;
  if (divisorZero) divisor[int(0, classes - 1)] = 0;
  const nodes: NodeSpec[] = [
    { opType: 'ReduceMean', inputs: ['pixels'], outputs: ['mean_rgb'], intLists: { axes: [1, 2] }, ints: { keepdims: 0 } },
    { opType: 'Gemm', inputs: ['mean_rgb', 'weights', 'bias'], outputs: ['logits'] },
    { opType: 'Div', inputs: ['logits', 'divisor'], outputs: ['scores'] },
  ];
  const model = encodeModel({
    name: 'adversary',
    inputs: [{ name: 'pixels', dims: ['batch', size, size, 3] }],
    outputs: [{ name: 'scores', dims: ['batch', classes] }],
    initializers: [
      { name: 'weights', dims: [3, classes], values: weights },
      { name: 'bias', dims: [classes], values: bias },
      { name: 'divisor', dims: [classes], values: divisor },
    ],
    nodes,
  });
  return { model, divisorZero };
}

const LABEL_PIECES = ['cat', '=cmd()', '+1', '-x', '@sum', 'a,b', '"quoted"', 'naïve', '猫', 'tab\there', 'in space', 'new'] as const;

let client: Client;
let connection: Connection;
beforeAll(async () => ({ client, connection } = await testClient()));
afterAll(() => connection.close());

describe(`a generated adversary (seed ${SEED}; rerun with OBJINFER_SEED=${SEED})`, () => {
  const made = new Map<string, Kind>();
  let fixture: Fixture;
  let spec: RunSpec;
  let labels: string[];
  let divisorZero: boolean;

  async function addFile(): Promise<void> {
    const { kind, bytes, extension } = await hostileFile();
    const path = join(fixture.imagesDir, `obj-${made.size}-${kind}.${extension}`);
    writeFileSync(path, bytes);
    made.set(path, kind);
  }

  /** Random changes a user's sync tool might make between runs. */
  async function mutate(): Promise<void> {
    for (let n = int(2, 6); n > 0; n--) {
      const paths = [...made.keys()];
      const change = pick(['add', 'add', 'delete', 'replace-same-mtime', 'truncate'] as const);
      if (change === 'add' || paths.length === 0) await addFile();
      else {
        const path = pick(paths);
        if (change === 'delete') {
          rmSync(path);
          made.delete(path);
        } else if (change === 'truncate') {
          const bytes = readFileSync(path);
          writeFileSync(path, bytes.subarray(0, Math.floor(bytes.length / 2)));
          if (made.get(path) === 'valid') made.set(path, 'truncated');
        } else {
          const { mtime, atime } = statSync(path);
          const { kind, bytes } = await hostileFile();
          writeFileSync(path, bytes);
          utimesSync(path, atime, mtime);
          made.set(path, kind);
        }
      }
    }
  }

  async function runOnce() {
    return withWorker(spec.temporal.taskQueue, async () => waitForResult(client, (await startPipeline(client, spec)).workflowId));
  }

  async function checkInvariants(modelVersion: string, scores: PipelineSummary['modelScores']): Promise<void> {
    const t = (name: string) => `${spec.dataset}.${name}`;
    const listed = await query<{ uri: string; generation: bigint }>(spec, `SELECT uri, generation FROM ${t(spec.objectTable)} ORDER BY uri`);
    const onDisk = readdirSync(fixture.imagesDir).filter((f) => lstatSync(join(fixture.imagesDir, f)).isFile());
    expect(listed.map((r) => r.uri).sort()).toEqual(onDisk.map((f) => `file://${join(fixture.imagesDir, f)}`).sort());

    const rows = await query<{
      uri: string;
      generation: bigint;
      label: string;
      score: number;
      probabilities: number[];
      top_k: { label: string; index: number; score: number }[];
    }>(spec, `SELECT uri, generation, label, score, probabilities, top_k FROM ${t(spec.results.table)} WHERE model_version = '${modelVersion}'`);
    const errors = await query<{ uri: string; generation: bigint; error: string }>(
      spec,
      `SELECT uri, generation, error FROM ${t(spec.results.errorsTable)} WHERE model_version = '${modelVersion}'`,
    );
    const key = (r: { uri: string; generation: bigint }) => `${r.uri}#${r.generation}`;
    const outcomes = new Map<string, number>();
    for (const r of [...rows, ...errors]) outcomes.set(key(r), (outcomes.get(key(r)) ?? 0) + 1);
    for (const object of listed) expect([key(object), outcomes.get(key(object)) ?? 0]).toEqual([key(object), 1]);

    for (const row of rows) {
      expect(row.probabilities.every(Number.isFinite)).toBe(true);
      const best = Math.max(...row.probabilities);
      expect(row.probabilities[row.top_k[0]!.index]).toBe(best);
      expect(row.label).toBe(labels[row.top_k[0]!.index]);
      if (scores === 'logits') {
        // Ranked by the softmax of the raw outputs: probabilities, in the raw outputs' order.
        expect(row.score).toBeGreaterThan(0);
        expect(row.score).toBeLessThanOrEqual(1);
        expect(row.top_k.reduce((sum, t) => sum + t.score, 0)).toBeLessThanOrEqual(1 + 1e-9);
      } else expect(row.score).toBe(best);
      for (let i = 1; i < row.top_k.length; i++) expect(row.top_k[i - 1]!.score).toBeGreaterThanOrEqual(row.top_k[i]!.score);
    }
    const failedNow = new Set(errors.map(key));
    for (const object of listed) {
      const kind = made.get(decodeURIComponent(object.uri.slice('file://'.length)));
      if (kind && INVALID.has(kind)) expect([object.uri, failedNow.has(key(object))]).toEqual([object.uri, true]);
    }
    for (const { uri, error } of errors) {
      expect([uri, error.includes('\n') || error.trim() === '']).toEqual([uri, false]);
    }
    if (divisorZero) expect(rows).toEqual([]);
  }

  beforeAll(async () => {
    fixture = await makeFixture({ labels: [], taskQueue: uniqueQueue('adversary'), config: { results: { keepProbabilities: true, topK: 3 } } });
    const classes = int(2, 6);
    labels = Array.from({ length: classes }, (_, i) => `${pick(LABEL_PIECES)}${i}`);
    const size = pick([8, 16, 32]);
    let model: Buffer;
    ({ model, divisorZero } = randomModel(classes, size));
    writeFileSync(join(fixture.dir, 'models', 'adversary.onnx'), model);
    writeFileSync(join(fixture.dir, 'models', 'adversary.labels.txt'), labels.join(pick(['\n', '\r\n'])));
    for (let n = int(12, 24); n > 0; n--) await addFile();
    spec = {
      ...fixture.config,
      batch: { ...fixture.config.batch, size: int(1, 8) },
      model: { ...fixture.config.model, source: join(fixture.dir, 'models', 'adversary.onnx'), labels: join(fixture.dir, 'models', 'adversary.labels.txt') },
    };
  }, 120_000);

  test.each([1, 2, 3])(
    'run %i completes, and every object is predicted or failed exactly once',
    async (round) => {
      if (round > 1) await mutate();
      const summary = await runOnce();
      await checkInvariants(summary.modelVersion, summary.modelScores);
    },
    240_000,
  );
});
