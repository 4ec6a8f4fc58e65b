/** ONNX Runtime on the CPU: sessions cached per model file, float32 NHWC batches. */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { readFile } from 'node:fs/promises';
import * as ort from 'onnxruntime-node';
import { ErrorType, ObjinferError } from '../../errors';
import type { ModelDescription } from '../../workflows/contract';
import { labelOf } from '../common/model';
import type { TensorSignature } from '../common/modelCheck';
import type { LabelScore } from '../port';

const sessions = new Map<string, Promise<ort.InferenceSession>>();
let loads = 0;

/** How many sessions this process has created (a model is loaded once per process and content). */
export function sessionLoads(): number {
  return loads;
}

/**
 * The settings every session gets; the benchmark's bare loop uses the same ones. Chosen by
 * measurement (bench/ `session` rows): full graph optimisation (the 'extended' level: 0.62x),
 * the memory arena on (off: 0.94x), ONNX Runtime's threads not spinning between runs, which
 * left the bare loop as fast and let the decoders that run next start at once (decoding 12 %
 * faster between runs), and no memory pattern (a pattern is planned, and its memory kept,
 * per input shape): the bare loop 0-1 % slower, the worker's peak 150-190 MiB lower, and
 * with chunks of two runs (inference.ts) the pipeline as fast or faster.
 */
export const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {
  graphOptimizationLevel: 'all',
  enableMemPattern: false,
  extra: { session: { intra_op: { allow_spinning: '0' } } },
};

/**
 * One session per model per process: loading a large model is the slow part. With the
 * model's content digest (`contentDigest`, SHA-256 of the model as the user gave it), the
 * model and its bucket copy share one session: `objinfer run` checks the model before it
 * provisions, and its worker then runs the copy, loaded once (a 97 MiB model took 240-400 ms
 * a load). `shownAs` names the model in errors as the user wrote it (model.source).
 */
export function loadSession(path: string, shownAs = path, contentDigest?: string): Promise<ort.InferenceSession> {
  const key = contentDigest ? `sha256:${contentDigest}` : `path:${path}`;
  let session = sessions.get(key);
  if (!session) {
    loads++;
    session = readFile(path)
      .then((bytes) => ort.InferenceSession.create(bytes, SESSION_OPTIONS))
      .catch((error: Error) => {
        sessions.delete(key);
        throw unloadable(error, shownAs);
      });
    sessions.set(key, session);
  }
  return session;
}

/** The bundled ONNX Runtime's version, for messages about what it can read. */
const ORT_VERSION = (JSON.parse(readFileSync(join(dirname(require.resolve('onnxruntime-node')), '..', 'package.json'), 'utf8')) as { version: string }).version;

/** ONNX Runtime's message without the C++ location and signature it starts with. */
function ortMessage(error: Error): string {
  return error.message.split('\n')[0]!.replace(/^\/onnxruntime_src\/\S+ .*?\)\s+(?=[A-Z])/, '');
}

/** Why ONNX Runtime cannot load a model, with what to do: newer IR versions and opsets are the model's doing, not the config's. */
function unloadable(error: Error, shownAs: string): ObjinferError {
  const message = ortMessage(error);
  const ir = /Unsupported model IR version: (\d+), max supported IR version: (\d+)/.exec(message);
  if (ir) {
    return new ObjinferError(
      ErrorType.ModelInvalid,
      `model.source ${shownAs} was saved with ONNX IR version ${ir[1]}; the bundled ONNX Runtime ${ORT_VERSION} reads IR versions up to ${ir[2]} ` +
        `(docs/guide.md lists what it reads): re-save it with IR version ${ir[2]} (python: m = onnx.load(path); m.ir_version = ${ir[2]}; onnx.save(m, path), ` +
        'which works when the model uses nothing newer), or export it again with an older onnx package',
    );
  }
  const opset = /Opset (\d+) is under development.*till opset (\d+)/.exec(message);
  if (opset) {
    return new ObjinferError(
      ErrorType.ModelInvalid,
      `model.source ${shownAs} uses ai.onnx opset ${opset[1]}; the bundled ONNX Runtime ${ORT_VERSION} supports opsets up to ${opset[2]}: ` +
        `export it again with an opset of at most ${opset[2]} (torch.onnx.export(..., opset_version=${opset[2]}), tf2onnx --opset ${opset[2]})`,
    );
  }
  return new ObjinferError(ErrorType.ModelInvalid, `model.source ${shownAs} is not an ONNX model ONNX Runtime can load: ${message}`);
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

/** What a CPU turn is spent on (see cpuTurn). */
export type TurnKind = 'decode' | 'inference' | 'warehouse';

interface Waiter {
  kind: TurnKind;
  start(): void;
}

const waiting: Waiter[] = [];
const running: Record<TurnKind, number> = { decode: 0, inference: 0, warehouse: 0 };

/**
 * CPU turns in a worker process. An inference run has the CPU to itself: ONNX Runtime
 * already uses every core, and its threads meet at a barrier after each operator, so work
 * beside it stalls the whole run rather than filling idle time (measured in bench/:
 * overlapping reached 87 % of the bare loop, taking turns 92 %). Decoding and warehouse
 * work may share a turn: neither has such a barrier, and a run's rows are written while the
 * next run decodes (docs/benchmarks.md). Turns start in the order they were asked for.
 */
export function cpuTurn<T>(kind: TurnKind, work: () => Promise<T>): Promise<T> {
  return new Promise<void>((start) => {
    waiting.push({ kind, start });
    startWaiting();
  }).then(async () => {
    try {
      return await work();
    } finally {
      running[kind]--;
      startWaiting();
    }
  });
}

function startWaiting(): void {
  while (waiting.length > 0) {
    const next = waiting[0]!;
    const busy = running.decode + running.inference + running.warehouse;
    if (next.kind === 'inference' ? busy > 0 : running.inference > 0) break;
    waiting.shift();
    running[next.kind]++;
    next.start();
  }
  profile.change();
}

/**
 * Where the worker's time goes, for bench/ (OBJINFER_PROFILE=FILE keeps FILE up to date):
 * milliseconds with an inference run going, with decoding going (warehouse work may run
 * beside it), and with only warehouse work going. The rest is time outside any turn.
 */
const profile = {
  totals: { inference: 0, decode: 0, warehouse: 0 } as Record<TurnKind, number>,
  current: undefined as TurnKind | undefined,
  since: 0,
  change(): void {
    const now = performance.now();
    if (this.current) this.totals[this.current] += now - this.since;
    this.current = running.inference ? 'inference' : running.decode ? 'decode' : running.warehouse ? 'warehouse' : undefined;
    this.since = now;
    const file = process.env.OBJINFER_PROFILE;
    if (file) writeFileSync(file, JSON.stringify(this.totals));
  },
};

/** Milliseconds this process has spent in CPU turns so far, by what was running. */
export function turnProfile(): Record<TurnKind, number> {
  return { ...profile.totals };
}

/** Runs one float32 NHWC batch and returns one score row per image. */
export async function classify(
  session: ort.InferenceSession,
  model: Pick<ModelDescription, 'inputName' | 'outputName'>,
  pixels: Float32Array,
  dims: [number, number, number, number],
): Promise<ArrayLike<number>[]> {
  const output = await cpuTurn('inference', () => session.run({ [model.inputName]: new ort.Tensor('float32', pixels, dims) })).catch((error: Error) => {
    throw modelRunFailed(error, model, dims);
  });
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

/**
 * A run that ONNX Runtime refuses fails the same way for every batch: the model, not an
 * image, is the cause (every image of a run has the same shape). So the run fails with what
 * to change, instead of retrying batch after batch.
 */
function modelRunFailed(error: Error, model: Pick<ModelDescription, 'inputName'>, dims: number[]): ObjinferError {
  const message = error.message.split('\n')[0]!;
  const hint = /invalid dimensions|Dimension mismatch|Incompatible dimensions|shape/i.test(message)
    ? `the model cannot take images of [${dims.join(', ')}] (batch, height, width, channels) on "${model.inputName}": ` +
      'check model.inputSize, and that the model takes NHWC input with a batch dimension that is dynamic or 1'
    : 'the model is the cause (every batch would fail the same way): check it runs in ONNX Runtime on float32 NHWC images';
  return new ObjinferError(ErrorType.ModelShapeMismatch, `ONNX Runtime could not run model.source on a batch of ${dims[0]} image(s): ${message}; ${hint}`);
}

/**
 * The k best classes, highest score first; ties keep the lower index first. Scores are
 * finite (see inference.ts). One pass keeping the best k in order, not a sort of every
 * class: 0.28 -> 0.01 ms per image at 1 000 classes, 8.4 -> 0.1 ms at 21 843 (bench
 * figures in docs/benchmarks.md).
 */
export function topK(scores: ArrayLike<number>, labels: readonly string[], k: number): LabelScore[] {
  const best: number[] = [];
  for (let i = 0; i < scores.length; i++) {
    const score = scores[i]!;
    if (best.length === k && !(score > scores[best[k - 1]!]!)) continue;
    // Classes come in index order, so an equal score stays behind the ones already kept.
    let at = best.length;
    while (at > 0 && score > scores[best[at - 1]!]!) at--;
    best.splice(at, 0, i);
    if (best.length > k) best.pop();
  }
  return best.map((index) => ({ label: labelOf(labels, index), index, score: scores[index]! }));
}
