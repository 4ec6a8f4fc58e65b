/** Batch inference on the worker: read, decode and resize images, then one ONNX Runtime run. */
import { readFile } from 'node:fs/promises';
import { decodeRgb8, ImageDecodeError, ImageResizeError, MAX_IMAGE_BYTES, resizeRgb8 } from '../../images';
import type { ModelDescription } from '../backend';
import { classify, loadSession } from './runtime';
import { uriToPath } from './storage';

/** Decoding runs this many images at once; sharp does the work on libuv threads. */
const DECODE_PARALLELISM = 4;

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

/** Decodes, resizes and classifies; an image that cannot be decoded becomes a failure. */
export async function classifyObjects(
  objects: PendingObject[],
  model: ModelDescription,
  options: ClassifyOptions,
): Promise<{ predictions: Prediction[]; failures: Failure[] }> {
  const session = await loadSession(uriToPath(model.modelUri));
  const [height, width] = model.inputSize;
  const pixelsPerImage = height * width * 3;
  const tensors: (Float32Array | undefined)[] = new Array(objects.length);
  const failures: Failure[] = [];
  let next = 0;
  let done = 0;
  const preprocess = async () => {
    while (next < objects.length) {
      options.signal?.throwIfAborted();
      const index = next++;
      const object = objects[index]!;
      try {
        tensors[index] = await loadImage(object, height, width, options.preserveAspectRatio);
      } catch (error) {
        if (!(error instanceof ImageDecodeError || error instanceof ImageResizeError || isMissingFile(error))) throw error;
        const reason = (error as Error).message.split('\n')[0]!;
        failures.push({ object, error: `${reason} (${object.uri})` });
      }
      options.onProgress?.(++done);
    }
  };
  await Promise.all(Array.from({ length: DECODE_PARALLELISM }, preprocess));
  const ready = objects.flatMap((object, i) => (tensors[i] ? [{ object, pixels: tensors[i] }] : []));
  if (ready.length === 0) return { predictions: [], failures };
  const batch = new Float32Array(ready.length * pixelsPerImage);
  ready.forEach((x, i) => batch.set(x.pixels, i * pixelsPerImage));
  const scores = await classify(session, model.inputName, model.outputName, batch, [ready.length, height, width, 3]);
  return { predictions: ready.map((x, i) => ({ object: x.object, scores: scores[i]! })), failures };
}

async function loadImage(object: PendingObject, height: number, width: number, preserveAspectRatio: boolean): Promise<Float32Array> {
  if (object.size > BigInt(MAX_IMAGE_BYTES)) {
    throw new ImageDecodeError(`image is ${object.size} bytes; DECODE_IMAGE accepts at most ${MAX_IMAGE_BYTES} bytes (10 MB)`);
  }
  const resized = resizeRgb8(await decodeRgb8(await readFile(uriToPath(object.uri))), height, width, preserveAspectRatio);
  if (resized.height !== height || resized.width !== width) {
    throw new ImageResizeError(
      `resized to ${resized.height}x${resized.width} keeping the aspect ratio, but the model takes ${height}x${width}; set model.preserveAspectRatio: false`,
    );
  }
  return resized.data;
}

function isMissingFile(error: unknown): boolean {
  return (error as NodeJS.ErrnoException)?.code === 'ENOENT';
}
