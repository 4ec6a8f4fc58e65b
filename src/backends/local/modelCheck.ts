/** Reads a local model (an ONNX file, or a SavedModel through its checked conversion) and checks it (common/modelCheck.ts). */
import { readFile } from 'node:fs/promises';
import type { ModelSpec } from '../../config';
import type { Progress } from '../../models/savedModel';
import { parseLabels } from '../common/model';
import { checkModel, type CheckedModel } from '../common/modelCheck';
import { modelSource } from './modelSource';
import { loadSession, signature } from './runtime';

export { checkModel, type CheckedModel } from '../common/modelCheck';

/**
 * Reads a local model (an ONNX file, or a SavedModel through its checked conversion) and its
 * labels and checks them, before anything is created.
 */
export async function inspectOnnxModel(model: ModelSpec, progress?: Progress): Promise<CheckedModel> {
  const labels = model.labels ? parseLabels(await readFile(model.labels, 'utf8')) : undefined;
  const source = await modelSource(model, progress);
  const { inputs, outputs } = signature(await loadSession(source.onnx, model.source, source.digest));
  return checkModel(inputs, outputs, model, labels);
}
