/**
 * Batch inference on the worker: images decoded and resized in the decoder processes
 * (isolated: see images/decoderPool.ts) straight into the run's input tensor, then one
 * ONNX Runtime run. An inference run has the CPU to itself (see cpuTurn).
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
 * Images per ONNX Runtime run at most: bounds a batch's memory whatever batch.size is.
 * Measured on the ResNet-50-shaped model (docs/benchmarks.md): 64 peaks the worker at
 * 1.4 GiB, 32 at 0.9 GiB for about 3 % less throughput, 16 at 0.65 GiB for 11 % less.
 * OBJINFER_RUN_IMAGES overrides it (e.g. 64 on a machine with memory to spare).
 */
export const MAX_RUN_IMAGES = Number(process.env.OBJINFER_RUN_IMAGES ?? 32);

/** How many inference runs a batch of `images` takes. */
export function runCount(images: number): number {
  return Math.ceil(images / MAX_RUN_IMAGES);
}

export interface ClassifiedChunk {
  predictions: Prediction[];
  failures: Failure[];
}

/**
 * Decodes, resizes and classifies in runs of at most MAX_RUN_IMAGES. An image that cannot
 * be read, decoded or scored becomes a failure of its own; the rest go on.
 */
export async function* classifyInRuns(objects: PendingObject[], model: ModelDescription, options: ClassifyOptions): AsyncGenerator<ClassifiedChunk> {
  const session = await loadSession(uriToPath(model.modelUri));
  const pool = options.pool ?? decoderPool();
  const [height, width] = model.inputSize;
  const runs = runCount(objects.length);
  const size = Math.ceil(objects.length / Math.max(runs, 1));
  let done = 0;
  const progress = () => options.onProgress?.(++done);
  for (let i = 0; i < runs; i++) {
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
      scores = ready.length === 0 ? [] : await classify(session, model, decoded.pixels, [ready.length, height, width, 3]);
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

/** Describes NaN or infinite scores (which rank nothing), or returns undefined when all are finite. */
function nonFinite(scores: ArrayLike<number>): string | undefined {
  const bad: string[] = [];
  for (let i = 0; i < scores.length; i++) if (!Number.isFinite(scores[i])) bad.push(`${scores[i]} at class ${i}`);
  if (bad.length === 0) return undefined;
  return `holds ${bad.slice(0, 3).join(', ')}${bad.length > 3 ? ` and ${bad.length - 3} more non-finite scores` : ''} for this image; it cannot be ranked`;
}

/**
 * Input tensors reused from run to run: a fresh 20 MB array per run costs zeroing, page
 * faults and garbage collections in the worker (measured: see docs/benchmarks.md).
 */
const tensorBuffers = {
  free: [] as Float32Array[],
  take(length: number): Float32Array {
    const index = this.free.findIndex((buffer) => buffer.length >= length);
    return index >= 0 ? this.free.splice(index, 1)[0]!.subarray(0, length) : new Float32Array(length);
  },
  give(buffer: Float32Array): void {
    // At most two kept (two runs can be between decoding and inference at once), whole.
    this.free.push(new Float32Array(buffer.buffer));
    if (this.free.length > 2) this.free.sort((a, b) => b.length - a.length).pop();
  },
};

/** Decodes a run's images into `pixels`: those that decoded, in order, packed at the front. */
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
