/** ONNX Runtime on the CPU: sessions cached per model file, float32 NHWC batches. */
import { readFile } from 'node:fs/promises';
import * as ort from 'onnxruntime-node';
import { ErrorType, ObjinferError } from '../../errors';
import type { ModelDescription } from '../../workflows/contract';
import { labelOf } from '../common/model';
import type { LabelScore } from '../port';

const sessions = new Map<string, Promise<ort.InferenceSession>>();

/** The settings every session gets; the benchmark's bare loop uses the same ones. */
export const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all' };

/**
 * One session per model file per process: loading a large model is the slow part.
 * `shownAs` names the model in errors as the user wrote it (model.source), not its copy.
 */
export function loadSession(path: string, shownAs = path): Promise<ort.InferenceSession> {
  let session = sessions.get(path);
  if (!session) {
    session = readFile(path)
      .then((bytes) => ort.InferenceSession.create(bytes, SESSION_OPTIONS))
      .catch((error: Error) => {
        sessions.delete(path);
        throw new ObjinferError(ErrorType.ModelInvalid, `model.source ${shownAs} is not an ONNX model ONNX Runtime can load: ${error.message.split('\n')[0]}`);
      });
    sessions.set(path, session);
  }
  return session;
}

export interface TensorSignature {
  name: string;
  type: string;
  shape: (number | string)[];
}

export function signature(session: ort.InferenceSession): { inputs: TensorSignature[]; outputs: TensorSignature[] } {
  const describe = (meta: readonly ort.InferenceSession.ValueMetadata[]): TensorSignature[] =>
    meta.map((m) =>
      m.isTensor
        ? { name: m.name, type: m.type, shape: [...m.shape].map((d) => (typeof d === 'number' && d >= 0 ? d : String(d))) }
        : { name: m.name, type: 'non-tensor', shape: [] },
    );
  return { inputs: describe(session.inputMetadata), outputs: describe(session.outputMetadata) };
}

let cpuQueue: Promise<unknown> = Promise.resolve();

/**
 * One CPU-heavy step at a time per worker process: an inference run, or decoding a run of
 * images. ONNX Runtime already uses every core, and its threads meet at a barrier after
 * each operator, so decoding beside it stalls the whole run rather than filling idle time
 * (measured in bench/: overlapping reached 87 % of the bare loop, taking turns 92 %).
 * Reading files and writing rows happen outside the turn.
 */
export function cpuTurn<T>(work: () => Promise<T>): Promise<T> {
  const mine = cpuQueue.catch(() => undefined).then(work);
  cpuQueue = mine;
  return mine;
}

/** Runs one float32 NHWC batch and returns one score row per image. */
export async function classify(
  session: ort.InferenceSession,
  model: Pick<ModelDescription, 'inputName' | 'outputName'>,
  pixels: Float32Array,
  dims: [number, number, number, number],
): Promise<ArrayLike<number>[]> {
  const output = await cpuTurn(() => session.run({ [model.inputName]: new ort.Tensor('float32', pixels, dims) }));
  const scores = output[model.outputName];
  if (!scores) throw new ObjinferError(ErrorType.ModelInvalid, `model returned no output named ${model.outputName}`);
  if (scores.dims.length !== 2 || scores.dims[0] !== dims[0]) {
    throw new ObjinferError(
      ErrorType.ModelShapeMismatch,
      `model output "${model.outputName}" has shape [${scores.dims.join(', ')}] for ${dims[0]} images; objinfer reads class scores from a [batch, classes] output (set model.output)`,
    );
  }
  if (scores.type !== 'float32' && scores.type !== 'float64') {
    throw new ObjinferError(
      ErrorType.ModelShapeMismatch,
      `model output "${model.outputName}" is ${scores.type}; objinfer reads float32 or float64 class scores`,
    );
  }
  const data = scores.data as Float32Array | Float64Array;
  const classes = Number(scores.dims[1]);
  return Array.from({ length: dims[0] }, (_, i) => data.subarray(i * classes, (i + 1) * classes));
}

/** The k best classes, highest score first; ties keep the lower index first. Scores are finite (see inference.ts). */
export function topK(scores: ArrayLike<number>, labels: readonly string[], k: number): LabelScore[] {
  const order = Array.from({ length: scores.length }, (_, i) => i);
  order.sort((a, b) => scores[b]! - scores[a]! || a - b);
  return order.slice(0, k).map((index) => ({ label: labelOf(labels, index), index, score: scores[index]! }));
}
