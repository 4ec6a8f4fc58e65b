/** Picks the adapter the spec names. */
import type { RunSpec } from '../config';
import { createGcpBackend, openGcpResults } from './gcp';
import { createLocalBackend, openLocalResults } from './local';
import type { Backend, ResultsPort } from './port';

export type { Backend, BackendFactory, ResultsPort } from './port';

export function createBackend(spec: RunSpec): Backend {
  switch (spec.backend) {
    case 'local':
      return createLocalBackend(spec);
    case 'gcp':
      return createGcpBackend(spec);
  }
}

/** The read side alone: what `results`, `report` and `export` need, without provisioning clients. */
export function openResults(spec: RunSpec): ResultsPort {
  return spec.backend === 'local' ? openLocalResults(spec) : openGcpResults(spec);
}

export interface ModelInspection {
  /** What the run would use, when the model could be read here. */
  inputSize?: [number, number];
  outputName?: string;
  warnings: string[];
}

/**
 * Reads the model and its labels before anything is created, where that is possible here:
 * an ONNX file on this machine. Throws the ObjinferError the describe step would raise.
 * A TensorFlow SavedModel (gcp) is read by BigQuery; it is checked when the run describes it.
 */
export async function inspectModel(spec: RunSpec): Promise<ModelInspection> {
  const { model } = spec;
  if (model.type !== 'ONNX' || model.source.startsWith('gs://') || (model.labels?.startsWith('gs://') ?? false)) {
    return { warnings: [] };
  }
  const { inspectOnnxModel } = await import('./local/modelCheck');
  const checked = await inspectOnnxModel(model);
  return { inputSize: checked.inputSize, outputName: checked.outputName, warnings: checked.warnings };
}
