/** Batch inference on the worker: read, decode and resize images, then one ONNX Runtime run. */
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { decodeRgb8, ImageDecodeError, ImageResizeError, MAX_IMAGE_BYTES, resizeRgb8 } from '../../images';
import type { ModelDescription } from '../backend';
import { classify, cpuTurn, loadSession } from './runtime';
import { objectPath, uriToPath } from './storage';

/** Images decoded at once, each on one thread (see images/decode.ts): every core, in its turn. */
const DECODE_PARALLELISM = availableParallelism();

export interface PendingObject {
  uri: string;
  generation: bigint;
  size: bigint;
}

export interface Prediction {
  object: PendingObject;
  scores: Float32Array;
}

export interface Failure {
  object: PendingObject;
  error: string;
}

export interface ClassifyOptions {
  preserveAspectRatio: boolean;
  onProgress?: (imagesDone: number) => void;
  signal?: AbortSignal;
}

/** Images per ONNX Runtime run at most: bounds a batch's memory whatever batch.size is. */
export const MAX_RUN_IMAGES = 64;

/** How many inference runs a batch of `images` takes. */
export function runCount(images: number): number {
  return Math.ceil(images / MAX_RUN_IMAGES);
}

export interface ClassifiedChunk {
  predictions: Prediction[];
  failures: Failure[];
}

/**
 * Decodes, resizes and classifies in runs of at most MAX_RUN_IMAGES; an image that cannot
 * be decoded becomes a failure. The next run's files are read while the current one
 * infers; decoding and inference take turns on the CPU (see cpuTurn).
 */
export async function* classifyInRuns(
  objects: PendingObject[],
  model: ModelDescription,
  options: ClassifyOptions,
): AsyncGenerator<ClassifiedChunk> {
  const session = await loadSession(uriToPath(model.modelUri));
  const [height, width] = model.inputSize;
  const runs = runCount(objects.length);
  const size = Math.ceil(objects.length / Math.max(runs, 1));
  const chunks = Array.from({ length: runs }, (_, i) => objects.slice(i * size, (i + 1) * size));
  let done = 0;
  const progress = () => options.onProgress?.(++done);
  const prepare = (chunk: PendingObject[]) => {
    const prepared = preprocess(chunk, height, width, options, progress);
    prepared.catch(() => undefined); // awaited below; this only keeps an early failure from being "unhandled"
    return prepared;
  };
  let next = chunks.length > 0 ? prepare(chunks[0]!) : undefined;
  for (let i = 0; i < chunks.length; i++) {
    const { ready, pixels, failures } = await next!;
    next = i + 1 < chunks.length ? prepare(chunks[i + 1]!) : undefined;
    options.signal?.throwIfAborted();
    if (ready.length === 0) {
      yield { predictions: [], failures };
      continue;
    }
    const scores = await classify(session, model.inputName, model.outputName, pixels, [ready.length, height, width, 3]);
    yield { predictions: ready.map((object, j) => ({ object, scores: scores[j]! })), failures };
  }
}

/**
 * Reads a run's files (I/O, outside the CPU turn), then decodes and resizes them in one turn,
 * straight into the run's input tensor: the images that decoded, in order, packed at the front.
 */
async function preprocess(
  objects: PendingObject[],
  height: number,
  width: number,
  options: ClassifyOptions,
  onImage: () => void,
): Promise<{ ready: PendingObject[]; pixels: Float32Array; failures: Failure[] }> {
  const failures: Failure[] = [];
  const fail = (object: PendingObject, error: unknown): undefined => {
    if (!(error instanceof ImageDecodeError || error instanceof ImageResizeError || isUnreadableFile(error))) throw error;
    const reason = (error as Error).message.split('\n')[0]!;
    failures.push({ object, error: `${reason} (${object.uri})` });
    onImage();
    return undefined;
  };
  const bytes = await Promise.all(objects.map((object) => readObject(object).catch((error: unknown) => fail(object, error))));
  options.signal?.throwIfAborted();
  const perImage = height * width * 3;
  const pixels = new Float32Array(objects.length * perImage);
  const decoded = new Array<boolean>(objects.length).fill(false);
  await cpuTurn(async () => {
    let next = 0;
    const work = async () => {
      while (next < objects.length) {
        options.signal?.throwIfAborted();
        const index = next++;
        const image = bytes[index];
        if (!image) continue; // could not be read: already a failure
        try {
          await decodeInto(image, height, width, options.preserveAspectRatio, pixels.subarray(index * perImage, (index + 1) * perImage));
          decoded[index] = true;
          onImage();
        } catch (error) {
          fail(objects[index]!, error);
        }
      }
    };
    await Promise.all(Array.from({ length: DECODE_PARALLELISM }, work));
  });
  // Close the gaps that failed images left, so the tensor holds only decoded images.
  const ready: PendingObject[] = [];
  objects.forEach((object, index) => {
    if (!decoded[index]) return;
    if (ready.length !== index) pixels.copyWithin(ready.length * perImage, index * perImage, (index + 1) * perImage);
    ready.push(object);
  });
  return { ready, pixels: pixels.subarray(0, ready.length * perImage), failures };
}

async function readObject(object: PendingObject): Promise<Buffer> {
  if (object.size > BigInt(MAX_IMAGE_BYTES)) {
    throw new ImageDecodeError(`image is ${object.size} bytes; DECODE_IMAGE accepts at most ${MAX_IMAGE_BYTES} bytes (10 MB)`);
  }
  return readFile(objectPath(object.uri));
}

async function decodeInto(bytes: Buffer, height: number, width: number, preserveAspectRatio: boolean, into: Float32Array): Promise<void> {
  const resized = resizeRgb8(await decodeRgb8(bytes), height, width, preserveAspectRatio, into);
  if (resized.height !== height || resized.width !== width) {
    throw new ImageResizeError(
      `resized to ${resized.height}x${resized.width} keeping the aspect ratio, but the model takes ${height}x${width}; set model.preserveAspectRatio: false`,
    );
  }
}

/** Gone since it was listed, unreadable, or a directory: that object fails, the batch goes on. */
function isUnreadableFile(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT' || code === 'EACCES' || code === 'EPERM' || code === 'EISDIR') {
    (error as Error).message = `cannot read the object: ${code}`;
    return true;
  }
  return false;
}
