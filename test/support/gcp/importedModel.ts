/**
 * TEST-ONLY: what BigQuery reads from a model it imports, read here by the model's own
 * engine, never by objinfer's code: an ONNX file's input and output names by ONNX Runtime,
 * a SavedModel's serving signature by TensorFlow (tensorflow_model.py), which also runs the
 * SavedModel when ML.PREDICT calls it. A model its engine cannot load is refused at import,
 * as CREATE MODEL refuses it.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { InferenceSession } from 'onnxruntime-node';
import { tensorflowPython } from '../../../src/models/savedModel';
import { PROJECT_ROOT } from '../paths';

export interface ImportedSignature {
  feature: string;
  outputs: string[];
  /** The SavedModel's folder on this machine (TENSORFLOW only), for ML.PREDICT. */
  dir?: string;
}

const SCRIPT = join(PROJECT_ROOT, 'test', 'support', 'gcp', 'tensorflow_model.py');

function tensorflow(args: string[]): Promise<string> {
  return tensorflowPython().then(
    (python) =>
      new Promise((done, fail) => {
        const child = spawn(python, [SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3' } });
        let out = '';
        let err = '';
        child.stdout.on('data', (c: Buffer) => (out += c.toString()));
        child.stderr.on('data', (c: Buffer) => (err += c.toString()));
        child.on('close', (code) => (code === 0 ? done(out) : fail(new Error(err.trim().split('\n').slice(-3).join(' ')))));
      }),
  );
}

/** Reads the model from its files (relative name -> bytes), as CREATE MODEL would. */
export async function importModel(type: string, files: Map<string, Buffer>): Promise<ImportedSignature> {
  if (type === 'ONNX') {
    const [bytes] = [...files.values()];
    const session = await InferenceSession.create(bytes!);
    const signature = { feature: session.inputNames[0]!, outputs: [...session.outputNames] };
    await session.release();
    return signature;
  }
  const dir = mkdtempSync(join(tmpdir(), 'objinfer-imported-'));
  for (const [name, bytes] of files) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), bytes);
  }
  const signature = JSON.parse(await tensorflow(['signature', dir])) as { inputs: { name: string }[]; outputs: { name: string }[] };
  return { feature: signature.inputs[0]!.name, outputs: signature.outputs.map((o) => o.name), dir };
}

/** The SavedModel's outputs per image file (null: TensorFlow cannot decode it). */
export async function runSavedModel(dir: string, size: [number, number], paths: string[]): Promise<Record<string, Record<string, number[]> | null>> {
  if (paths.length === 0) return {};
  return JSON.parse(await tensorflow(['predict', dir, String(size[0]), String(size[1]), ...paths])) as Record<string, Record<string, number[]> | null>;
}
