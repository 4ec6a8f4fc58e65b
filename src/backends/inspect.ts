/** The model check before anything is created; each engine is loaded only for the model that needs it. */
import type { RunSpec } from '../config';

export interface ModelInspection {
  /** What the run would use, when the model could be read here. */
  inputSize?: [number, number];
  outputName?: string;
  warnings: string[];
}

/**
 * Reads the model and its labels before anything is created, where that is possible here:
 * an ONNX file on this machine, or a SavedModel for the local backend (converted, once).
 * Throws the ObjinferError the describe step would raise. A TensorFlow SavedModel on gcp is
 * read by BigQuery; it is checked when the run describes it.
 */
export async function inspectModel(spec: RunSpec, progress?: (what: string) => void): Promise<ModelInspection> {
  const { model } = spec;
  if (model.source.startsWith('gs://') || (model.labels?.startsWith('gs://') ?? false)) return { warnings: [] };
  if (model.type === 'TENSORFLOW' && spec.backend === 'gcp') {
    // BigQuery imports the SavedModel as it is: its signature, read by TensorFlow, is checked against BigQuery's limits here.
    const { inspectSavedModelForBigQuery } = await import('./common/savedModelCheck');
    const checked = await inspectSavedModelForBigQuery(model, progress);
    return { inputSize: checked.inputSize, outputName: checked.outputName, warnings: checked.warnings };
  }
  const { inspectOnnxModel } = await import('./local/modelCheck');
  const checked = await inspectOnnxModel(model, progress);
  return { inputSize: checked.inputSize, outputName: checked.outputName, warnings: checked.warnings };
}
