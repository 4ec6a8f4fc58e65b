/**
 * A TensorFlow SavedModel for BigQuery, checked before anything is uploaded or created:
 * its size against the limit Google documents for imported TensorFlow models, and its
 * serving signature, as TensorFlow reads it, against what ML.PREDICT over an object table
 * feeds (float32 NHWC [batch, height, width, 3], batch dynamic or 1), with the same rules
 * and messages as an ONNX model (modelCheck.ts).
 */
import { stat, readFile } from 'node:fs/promises';
import type { ModelSpec } from '../../config';
import { ErrorType, ObjinferError } from '../../errors';
import { savedModelFiles, savedModelSignature, type Progress, type SavedModelTensor } from '../../models/savedModel';
import { parseLabels } from './model';
import { checkModel, type CheckedModel, type TensorSignature } from './modelCheck';

/** BigQuery's limit on an imported TensorFlow model's files. */
export const MAX_BIGQUERY_TENSORFLOW_BYTES = 450 * 1024 * 1024;

export async function inspectSavedModelForBigQuery(model: ModelSpec, progress?: Progress): Promise<CheckedModel> {
  let bytes = 0;
  for (const file of await savedModelFiles(model.source)) bytes += (await stat(file.path)).size;
  if (bytes > MAX_BIGQUERY_TENSORFLOW_BYTES) {
    throw new ObjinferError(
      ErrorType.ModelInvalid,
      `model.source ${model.source} is ${Math.round(bytes / 2 ** 20)} MiB; BigQuery imports TensorFlow models of at most 450 MB: use a smaller model (or quantise it)`,
    );
  }
  const signature = await savedModelSignature(model.source, progress);
  const labels = model.labels ? parseLabels(await readFile(model.labels, 'utf8')) : undefined;
  return checkModel(signature.inputs.map(asTensor), signature.outputs.map(asTensor), model, labels);
}

function asTensor(tensor: SavedModelTensor): TensorSignature {
  return { name: tensor.name, type: tensor.dtype, shape: (tensor.shape ?? []).map((d, i) => (d >= 0 ? d : i === 0 ? 'batch' : '?')) };
}
