/**
 * TensorFlow SavedModels (the tutorial's model type) where objinfer runs ONNX: the serving
 * signature read by TensorFlow itself, and a conversion by tf2onnx, made once per SavedModel
 * content and checked against TensorFlow before it is used. TensorFlow runs in a Python
 * environment objinfer installs on first use (pinned, from PyPI), in a cache outside any
 * project, keyed by version; savedmodel.py beside this file is TensorFlow's side.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorType, ObjinferError } from '../errors';
import { alive } from '../processes';

export const TENSORFLOW_VERSION = '2.21.0';
export const TF2ONNX_VERSION = '1.17.0';
/** The opset conversions are made at: the bundled ONNX Runtime reads up to 26. */
export const CONVERSION_OPSET = 17;
/** Converted and TensorFlow outputs agree when |onnx - tf| <= TOLERANCE * max(1, |tf|) (float32 sums in another order). */
export const CONVERSION_TOLERANCE = 1e-4;
/** Seeded inputs the conversion is checked on. */
const CHECK_IMAGES = 4;

const SCRIPT = resolve(__dirname, '..', '..', 'src', 'models', 'savedmodel.py');

/** objinfer's cache outside any project: $OBJINFER_CACHE, else $XDG_CACHE_HOME/objinfer, else ~/.cache/objinfer. */
export function cacheDir(env = process.env): string {
  return env.OBJINFER_CACHE || join(env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache'), 'objinfer');
}

export interface SavedModelTensor {
  name: string;
  dtype: string;
  /** -1 for a dimension of any size; null when the rank is unknown. */
  shape: number[] | null;
}

export interface SavedModelSignature {
  inputs: SavedModelTensor[];
  outputs: SavedModelTensor[];
}

/** Whether `dir` holds a SavedModel (saved_model.pb, or the text form). */
export function isSavedModel(dir: string): boolean {
  return statSync(dir, { throwIfNoEntry: false })?.isDirectory() === true && ['saved_model.pb', 'saved_model.pbtxt'].some((f) => existsSync(join(dir, f)));
}

/** The SavedModel's files, relative name -> path, in a stable order. */
export async function savedModelFiles(dir: string): Promise<{ name: string; path: string }[]> {
  const files: { name: string; path: string }[] = [];
  const walk = async (folder: string) => {
    for (const entry of (await readdir(folder, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      const path = join(folder, entry.name);
      if (entry.isDirectory()) await walk(path);
      else files.push({ name: relative(dir, path), path });
    }
  };
  await walk(dir);
  return files;
}

/** A hash of the SavedModel's files (names and bytes): the model's content, whatever folder it sits in. */
export async function savedModelDigest(dir: string): Promise<string> {
  const hash = createHash('sha256');
  for (const file of await savedModelFiles(dir)) hash.update(`${file.name}\0`).update(await readFile(file.path));
  return hash.digest('hex');
}

/** Says what a long step is doing (the install, the conversion), for the CLI or the worker's heartbeat. */
export type Progress = (what: string) => void;

/** The Python of objinfer's TensorFlow environment, installed first when it is not there. */
export async function tensorflowPython(progress: Progress = () => undefined): Promise<string> {
  const home = join(cacheDir(), 'tensorflow', `${TENSORFLOW_VERSION}-tf2onnx-${TF2ONNX_VERSION}`);
  const python = join(home, 'venv', 'bin', 'python');
  const ready = join(home, 'venv', '.ready');
  if (existsSync(ready)) return python;
  mkdirSync(home, { recursive: true });
  await withLock(join(home, 'install.lock'), async () => {
    if (existsSync(ready)) return;
    rmSync(join(home, 'venv'), { recursive: true, force: true });
    progress(
      `installing TensorFlow ${TENSORFLOW_VERSION} and tf2onnx ${TF2ONNX_VERSION} from PyPI into ${home} (once: about 600 MB to download, 1.6 GB on disk)`,
    );
    const base = process.env.OBJINFER_PYTHON ?? 'python3';
    await run(base, ['-m', 'venv', join(home, 'venv')], 'create a Python environment');
    await run(
      python,
      ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', `tensorflow-cpu==${TENSORFLOW_VERSION}`, `tf2onnx==${TF2ONNX_VERSION}`],
      'install TensorFlow',
    );
    await writeFile(ready, `${new Date().toISOString()}\n`);
  });
  return python;
}

/** The SavedModel's serving signature, as TensorFlow reads it. */
export async function savedModelSignature(dir: string, progress?: Progress): Promise<SavedModelSignature> {
  const python = await tensorflowPython(progress);
  return JSON.parse(await run(python, [SCRIPT, 'signature', dir], `read the SavedModel ${dir}`)) as SavedModelSignature;
}

export interface ConvertedModel {
  /** The ONNX file ONNX Runtime runs. */
  onnx: string;
  /** The SavedModel's content hash (savedModelDigest). */
  digest: string;
  /** How far the converted model's outputs were from TensorFlow's, on CHECK_IMAGES seeded inputs. */
  check: { images: number; maxAbsDifference: number; tolerance: number; tensorflow: string; tf2onnx: string };
  /** Whether this call converted it (false: it came from the cache). */
  converted: boolean;
}

/**
 * The SavedModel as ONNX: from the cache when this content was converted before, else
 * converted now and checked against TensorFlow on seeded inputs (`runOnnx` runs the
 * converted model with objinfer's ONNX Runtime). A conversion that differs fails, naming
 * the difference; nothing is cached for it.
 */
export async function convertSavedModel(
  dir: string,
  runOnnx: (onnx: string, input: Float32Array, shape: number[]) => Promise<Record<string, Float32Array>>,
  progress: Progress = () => undefined,
): Promise<ConvertedModel> {
  const digest = await savedModelDigest(dir);
  const folder = join(cacheDir(), 'converted', `${digest}-opset${CONVERSION_OPSET}`);
  const onnx = join(folder, 'model.onnx');
  const checkFile = join(folder, 'check.json');
  if (existsSync(checkFile)) return { onnx, digest, check: JSON.parse(readFileSync(checkFile, 'utf8')) as ConvertedModel['check'], converted: false };
  const python = await tensorflowPython(progress);
  const signature = await savedModelSignature(dir);
  const input = signature.inputs[0];
  const [height, width] = [input?.shape?.[1], input?.shape?.[2]];
  if (signature.inputs.length !== 1 || !input?.shape || input.shape.length !== 4 || !(height! > 0) || !(width! > 0)) {
    throw new ObjinferError(
      ErrorType.ModelShapeMismatch,
      `model.source ${dir}: the serving signature must take one image input [batch, height, width, 3] of a fixed size; it takes ${JSON.stringify(signature.inputs)}`,
    );
  }
  progress(`converting the SavedModel ${dir} to ONNX with tf2onnx ${TF2ONNX_VERSION} (once for this model)`);
  const partial = `${folder}.partial-${process.pid}`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  try {
    const made = JSON.parse(
      await run(python, [SCRIPT, 'convert', dir, join(partial, 'model.onnx'), String(CONVERSION_OPSET)], 'convert the SavedModel with tf2onnx'),
    ) as {
      tensorflow: string;
      tf2onnx: string;
    };
    progress('checking the conversion against TensorFlow');
    const reference = JSON.parse(
      await run(
        python,
        [SCRIPT, 'reference', dir, String(CHECK_IMAGES), String(height), String(width), join(partial, 'reference')],
        'run the SavedModel in TensorFlow',
      ),
    ) as { inputShape: number[]; outputs: Record<string, number[]> };
    const inputs = float32File(join(partial, 'reference', 'inputs.f32'));
    const outputs = await runOnnx(join(partial, 'model.onnx'), inputs, reference.inputShape);
    let worst = 0;
    for (const [name, shape] of Object.entries(reference.outputs)) {
      const expected = float32File(join(partial, 'reference', `output.${name}.f32`));
      const actual = outputs[name];
      if (!actual || actual.length !== expected.length) {
        throw new ObjinferError(
          ErrorType.ModelInvalid,
          `model.source ${dir}: the converted model has no output "${name}" of shape [${shape.join(', ')}] (it has ${Object.keys(outputs).join(', ')}); convert it by hand (docs/guide.md "Your own model")`,
        );
      }
      for (let i = 0; i < expected.length; i++) {
        const difference = Math.abs(actual[i]! - expected[i]!);
        if (!(difference <= CONVERSION_TOLERANCE * Math.max(1, Math.abs(expected[i]!)))) {
          throw new ObjinferError(
            ErrorType.ModelInvalid,
            `model.source ${dir}: the ONNX conversion differs from TensorFlow on output "${name}" (value ${i}: ${actual[i]} against ${expected[i]}, ` +
              `more than ${CONVERSION_TOLERANCE} relative); the model cannot be run as converted: report it, or convert it by hand (docs/guide.md "Your own model")`,
          );
        }
        worst = Math.max(worst, difference);
      }
    }
    const check = { images: CHECK_IMAGES, maxAbsDifference: worst, tolerance: CONVERSION_TOLERANCE, tensorflow: made.tensorflow, tf2onnx: made.tf2onnx };
    rmSync(join(partial, 'reference'), { recursive: true, force: true });
    await writeFile(join(partial, 'check.json'), `${JSON.stringify(check)}\n`);
    rmSync(folder, { recursive: true, force: true });
    renameSync(partial, folder); // readers see no conversion or the whole, checked one
    return { onnx, digest, check, converted: true };
  } finally {
    rmSync(partial, { recursive: true, force: true });
  }
}

/**
 * A file of raw float32 values. Its own bytes only: a Buffer may be a view of a larger
 * ArrayBuffer (Node.js 24 reads small files into a shared pool), which `.buffer` would give whole.
 */
function float32File(path: string): Float32Array {
  const bytes = readFileSync(path);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

/** Runs a command and returns its standard output; a failure says what it was for, with the command's last words. */
function run(command: string, args: string[], what: string): Promise<string> {
  return new Promise((done, fail) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3', PYTHONUNBUFFERED: '1' } });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err = (err + chunk.toString()).slice(-20_000)));
    child.on('error', (error) =>
      fail(
        new ObjinferError(
          ErrorType.InvalidConfig,
          `model.type TENSORFLOW: could not ${what}: ${error.message} (objinfer needs Python 3 with venv; set OBJINFER_PYTHON)`,
        ),
      ),
    );
    child.on('close', (code) => {
      if (code === 0) return done(out.trim().split('\n').pop() ?? '');
      const reported = (() => {
        try {
          return (JSON.parse(out.trim().split('\n').pop() ?? '') as { error?: string }).error;
        } catch {
          return undefined;
        }
      })();
      const last = reported ?? err.trim().split('\n').filter(Boolean).slice(-1)[0] ?? `exit ${code}`;
      const offline = /Could not find a version|No matching distribution|Network is unreachable|Temporary failure in name resolution/i.test(err);
      fail(
        new ObjinferError(
          reported ? ErrorType.ModelInvalid : ErrorType.InvalidConfig,
          `model.type TENSORFLOW: could not ${what}: ${last}` +
            (offline
              ? `; TensorFlow ${TENSORFLOW_VERSION} comes from PyPI: reach it, or convert the model by hand with tf2onnx and point model.source at the .onnx`
              : ''),
        ),
      );
    });
  });
}

/**
 * One holder at a time across processes (two workers installing at once), by an exclusive
 * directory that names its holder; a holder that died leaves it to the next.
 */
async function withLock<T>(lock: string, work: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      mkdirSync(lock);
      await writeFile(join(lock, 'pid'), String(process.pid));
      break;
    } catch {
      const holder = Number(readFileSync(join(lock, 'pid'), { encoding: 'utf8', flag: 'a+' }) || 0);
      const justMade = Date.now() - (statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? 0) < 10_000;
      if (holder ? !alive(holder) : !justMade) rmSync(lock, { recursive: true, force: true });
      else await sleep(500);
    }
  }
  try {
    return await work();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}
