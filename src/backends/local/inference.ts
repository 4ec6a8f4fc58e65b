/**
 * Batch inference on the worker: images decoded and resized in the decoder processes
 * (isolated: see images/decoderPool.ts) straight into the chunk's input tensor, then ONNX
 * Runtime runs over it. An inference run has the CPU to itself (see cpuTurn).
 */
import { decoderPool, type DecoderPool } from '../../images/decoderPool';
import { MAX_IMAGE_BYTES } from '../../images/limits';
import type { ModelDescription } from '../../workflows/contract';
import type { FailureKind } from '../port';
import { classify, cpuTurn, loadSession } from './runtime';
import { expectedStat, objectPath, uriToPath } from './storage';

export interface PendingObject {
  uri: string;
  generation: bigint;
  size: bigint;
  /** What the listing saw (see storage.ts): the decoder refuses a file that has changed since. */
  stat: string | null;
}

export interface Prediction {
  object: PendingObject;
  scores: ArrayLike<number>;
}

export interface Failure {
  object: PendingObject;
  error: string;
  kind: FailureKind;
}

export interface ClassifyOptions {
  preserveAspectRatio: boolean;
  onProgress?: (imagesDone: number) => void;
  signal?: AbortSignal;
  pool?: DecoderPool;
}

/**
 * Images per ONNX Runtime run at most: bounds the worker's memory whatever batch.size is
 * (ONNX Runtime's intermediate tensors grow with the run: on the ResNet-50-shaped model a
 * run of 64 takes the worker to about 1.0 GiB, 32 to about 0.8; docs/benchmarks.md).
 * OBJINFER_RUN_IMAGES overrides it (e.g. 64 on a machine with memory to spare).
 */
export const MAX_RUN_IMAGES = Number(process.env.OBJINFER_RUN_IMAGES ?? 32);

/**
 * Runs per chunk: a chunk's images are decoded in one CPU turn, inferred run after run and
 * written in one transaction. Two runs a chunk gave a default batch one decode turn and
 * one write instead of two of each: the same speed or 1.5 % more, with the input tensors
 * 38 MB larger (measured: docs/benchmarks.md, change 17).
 */
const RUNS_PER_CHUNK = 2;
const CHUNK_IMAGES = MAX_RUN_IMAGES * RUNS_PER_CHUNK;

/** How many chunks a batch of `images` takes. */
export function chunkCount(images: number): number {
  return Math.ceil(images / CHUNK_IMAGES);
}

export interface ClassifiedChunk {
  predictions: Prediction[];
  failures: Failure[];
}

/**
 * Decodes, resizes and classifies in chunks (of runs of at most MAX_RUN_IMAGES), yielding
 * each chunk's outcome. An image that cannot be read, decoded or scored becomes a failure
 * of its own; the rest go on.
 */
export async function* classifyInChunks(objects: PendingObject[], model: ModelDescription, options: ClassifyOptions): AsyncGenerator<ClassifiedChunk> {
  const session = await loadSession(uriToPath(model.modelUri), undefined, model.contentDigest);
  const pool = options.pool ?? decoderPool();
  const [height, width] = model.inputSize;
  const chunks = chunkCount(objects.length);
  const size = Math.ceil(objects.length / Math.max(chunks, 1));
  let done = 0;
  const progress = () => options.onProgress?.(++done);
  for (let i = 0; i < chunks; i++) {
    const chunk = objects.slice(i * size, (i + 1) * size);
    const buffer = tensorBuffers.take(chunk.length * height * width * 3);
    let scores: ArrayLike<number>[];
    let ready: PendingObject[];
    let failures: Failure[];
    try {
      const decoded = await cpuTurn('decode', () => preprocess(pool, chunk, buffer, height, width, options, progress));
      ({ ready, failures } = decoded);
      options.signal?.throwIfAborted();
      // ONNX Runtime reads the input during the run and keeps no reference to it: the buffer is free after.
      scores = await classifyInRuns(session, model, decoded.pixels, ready.length, height, width);
    } finally {
      tensorBuffers.give(buffer);
    }
    if (ready.length === 0) {
      yield { predictions: [], failures };
      continue;
    }
    const predictions: Prediction[] = [];
    ready.forEach((object, j) => {
      const problem = nonFinite(scores[j]!);
      if (problem) failures.push({ object, error: `the model's output "${model.outputName}" ${problem}`, kind: 'permanent' });
      else predictions.push({ object, scores: scores[j]! });
    });
    yield { predictions, failures };
  }
}

/** Scores for the first `images` images of `pixels`, in even runs of at most MAX_RUN_IMAGES, each a CPU turn of its own. */
async function classifyInRuns(
  session: Awaited<ReturnType<typeof loadSession>>,
  model: ModelDescription,
  pixels: Float32Array,
  images: number,
  height: number,
  width: number,
): Promise<ArrayLike<number>[]> {
  if (images === 0) return [];
  const perImage = height * width * 3;
  const most = Math.min(MAX_RUN_IMAGES, model.maxBatch ?? MAX_RUN_IMAGES);
  const runImages = Math.ceil(images / Math.ceil(images / most));
  const scores: ArrayLike<number>[] = [];
  for (let first = 0; first < images; first += runImages) {
    const count = Math.min(runImages, images - first);
    scores.push(...(await classify(session, model, pixels.subarray(first * perImage, (first + count) * perImage), [count, height, width, 3])));
  }
  return scores;
}

/** Describes NaN or infinite scores (which rank nothing), or returns undefined when all are finite. */
function nonFinite(scores: ArrayLike<number>): string | undefined {
  const bad: string[] = [];
  for (let i = 0; i < scores.length; i++) if (!Number.isFinite(scores[i])) bad.push(`${scores[i]} at class ${i}`);
  if (bad.length === 0) return undefined;
  return `holds ${bad.slice(0, 3).join(', ')}${bad.length > 3 ? ` and ${bad.length - 3} more non-finite scores` : ''} for this image; it cannot be ranked`;
}

/**
 * Input tensors reused from chunk to chunk: a fresh 38 MB array per chunk costs zeroing, page
 * faults and garbage collections in the worker (measured: see docs/benchmarks.md).
 */
const tensorBuffers = {
  free: [] as Float32Array[],
  take(length: number): Float32Array {
    const index = this.free.findIndex((buffer) => buffer.length >= length);
    return index >= 0 ? this.free.splice(index, 1)[0]!.subarray(0, length) : new Float32Array(length);
  },
  give(buffer: Float32Array): void {
    // At most two kept (two chunks can be between decoding and inference at once), whole.
    this.free.push(new Float32Array(buffer.buffer));
    if (this.free.length > 2) this.free.sort((a, b) => b.length - a.length).pop();
  },
};

/** Decodes a chunk's images into `pixels`: those that decoded, in order, packed at the front. */
async function preprocess(
  pool: DecoderPool,
  objects: PendingObject[],
  pixels: Float32Array,
  height: number,
  width: number,
  options: ClassifyOptions,
  onImage: () => void,
): Promise<{ ready: PendingObject[]; pixels: Float32Array; failures: Failure[] }> {
  const perImage = height * width * 3;
  const failures: Failure[] = [];
  const decoded = await Promise.all(
    objects.map(async (object, index) => {
      options.signal?.throwIfAborted();
      if (object.size > BigInt(MAX_IMAGE_BYTES)) {
        failures.push({ object, error: `image is ${object.size} bytes; DECODE_IMAGE accepts at most ${MAX_IMAGE_BYTES} bytes (10 MB)`, kind: 'permanent' });
        onImage();
        return false;
      }
      const outcome = await pool.decode({
        path: objectPath(object.uri),
        expect: object.stat ? expectedStat(object.stat, object.size) : undefined,
        height,
        width,
        preserveAspectRatio: options.preserveAspectRatio,
        into: pixels.subarray(index * perImage, (index + 1) * perImage),
      });
      onImage();
      if (!outcome.ok) failures.push({ object, error: outcome.failure.message, kind: outcome.failure.kind });
      return outcome.ok;
    }),
  );
  const ready: PendingObject[] = [];
  objects.forEach((object, index) => {
    if (!decoded[index]) return;
    if (ready.length !== index) pixels.copyWithin(ready.length * perImage, index * perImage, (index + 1) * perImage);
    ready.push(object);
  });
  return { ready, pixels: pixels.subarray(0, ready.length * perImage), failures };
}
