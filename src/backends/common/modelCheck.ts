/**
 * What a model must look like for objinfer (and BigQuery's imported models), checked in one
 * place: by the local describe step on the worker, and by the CLI before anything is created,
 * for an ONNX file or a SavedModel's signature (so that a labels file of the wrong length or a
 * contradicting input size stops a run before it provisions).
 */
import type { ModelSpec } from '../../config';
import { ErrorType, ObjinferError } from '../../errors';
import { chooseOutput } from './model';

/** A tensor of a model's signature: its name, element type, and dimensions (a string for one of any size). */
export interface TensorSignature {
  name: string;
  type: string;
  shape: (number | string)[];
}

export interface CheckedModel {
  inputName: string;
  outputName: string;
  outputNames: string[];
  inputSize: [number, number];
  classCount: number;
  /** 1 when the model's batch dimension is fixed at 1: it is fed one image at a time. */
  maxBatch?: number;
  warnings: string[];
}

function shapeText(shape: (number | string)[]): string {
  return `[${shape.join(', ')}]`;
}

/** What to do about an input that is channels-first (as PyTorch exports) or not float32. */
function layoutHint(input: TensorSignature): string {
  if (input.shape.length === 4 && input.shape[1] === 3 && input.shape[3] !== 3) {
    return (
      ' (this one is channels-first, NCHW, as PyTorch exports): export it channels-last, e.g. torch.onnx.export a wrapper whose forward ' +
      'is `model(x.permute(0, 3, 1, 2))` with an input of [batch, height, width, 3], or add a Transpose(perm=[0, 3, 1, 2]) after the input'
    );
  }
  if (input.type !== 'float32') return ` (this one is ${input.type}): export it with a float32 input of pixel values in [0, 1]`;
  return '';
}

/** Labels that name more than one class, with the class indices of each. */
function repeatedLabels(labels: string[]): [string, number[]][] {
  const at = new Map<string, number[]>();
  labels.forEach((label, index) => at.set(label, [...(at.get(label) ?? []), index]));
  return [...at.entries()].filter(([, lines]) => lines.length > 1);
}

/** Checks a model's signature against the config; throws an ObjinferError naming both sides. */
export function checkModel(inputs: TensorSignature[], outputs: TensorSignature[], model: ModelSpec, labels: string[] | undefined): CheckedModel {
  const input = inputs[0];
  if (!input || inputs.length !== 1) {
    throw new ObjinferError(
      ErrorType.ModelShapeMismatch,
      `model.source ${model.source}: the model must take one image input; it has inputs [${inputs.map((i) => i.name).join(', ')}]`,
    );
  }
  const shape = shapeText(input.shape);
  if (input.type !== 'float32' || input.shape.length !== 4 || !(input.shape[3] === 3 || typeof input.shape[3] === 'string')) {
    throw new ObjinferError(
      ErrorType.ModelShapeMismatch,
      `model input "${input.name}" is ${input.type} ${shape}; objinfer feeds float32 NHWC images [batch, height, width, 3]` + layoutHint(input),
    );
  }
  const batch = input.shape[0];
  if (typeof batch === 'number' && batch !== 1) {
    throw new ObjinferError(
      ErrorType.ModelShapeMismatch,
      `model input "${input.name}" has a fixed batch dimension of ${batch} (${shape}); BigQuery and objinfer take models whose batch dimension is ` +
        'dynamic (-1 or None) or 1: re-export it with a dynamic batch (torch.onnx.export(..., dynamic_axes={"<input>": {0: "batch"}}), or tf2onnx from a ' +
        'SavedModel whose signature has None as its batch)',
    );
  }
  const choice = chooseOutput(
    outputs.map((o) => ({ name: o.name, rank: o.shape.length, classes: typeof o.shape[1] === 'number' ? o.shape[1] : undefined })),
    model.output,
    labels?.length,
  );
  if ('error' in choice) throw new ObjinferError(ErrorType.ModelShapeMismatch, choice.error);
  const output = outputs.find((o) => o.name === choice.name)!;
  if (output.shape.length !== 2 || !['float32', 'float64'].includes(output.type)) {
    throw new ObjinferError(
      ErrorType.ModelShapeMismatch,
      `model output "${output.name}" is ${output.type} ${shapeText(output.shape)}; objinfer reads class scores from a float [batch, classes] output` +
        (outputs.length > 1 ? ` (the model's outputs: ${outputs.map((o) => `${o.name} ${shapeText(o.shape)}`).join(', ')}; set model.output)` : ''),
    );
  }
  const [, modelHeight, modelWidth] = input.shape;
  const configured = model.inputSize;
  const fixed = typeof modelHeight === 'number' && typeof modelWidth === 'number' ? ([modelHeight, modelWidth] as [number, number]) : undefined;
  if (configured && fixed && (configured[0] !== fixed[0] || configured[1] !== fixed[1])) {
    throw new ObjinferError(
      ErrorType.ModelShapeMismatch,
      `model.inputSize is [${configured.join(', ')}] but model input "${input.name}" expects ${shape} (height ${fixed[0]}, width ${fixed[1]}); remove model.inputSize or set it to [${fixed.join(', ')}]`,
    );
  }
  const inputSize = configured ?? fixed;
  if (!inputSize) {
    throw new ObjinferError(
      ErrorType.InvalidConfig,
      `model.inputSize: model input "${input.name}" has no fixed size (${shape}); set model.inputSize to the height and width the model was trained on`,
    );
  }
  const outputClasses = output.shape[1];
  const classCount = typeof outputClasses === 'number' ? outputClasses : labels?.length;
  if (classCount === undefined) {
    throw new ObjinferError(
      ErrorType.InvalidConfig,
      `model.labels: output "${output.name}" has no fixed class count (${shapeText(output.shape)}); give a labels file`,
    );
  }
  if (labels) checkClassCount(model, labels, output.name, classCount, shapeText(output.shape));
  const warnings: string[] = [];
  if (model.preserveAspectRatio) {
    warnings.push(
      `model.preserveAspectRatio is true and the model takes exactly ${inputSize[0]}x${inputSize[1]}: only images whose sides are in that ratio can be classified, ` +
        'every other image fails (as in BigQuery); set model.preserveAspectRatio: false unless all your images share that shape',
    );
  }
  const repeated = repeatedLabels(labels ?? []);
  if (repeated.length > 0) {
    warnings.push(
      `model.labels names ${repeated
        .map(([label, lines]) => `"${label}" for classes ${lines.join(', ')}`)
        .slice(0, 3)
        .join('; ')}` + `${repeated.length > 3 ? ` and ${repeated.length - 3} more` : ''}: counts by label add those classes together; make each label unique`,
    );
  }
  if (outputs.length > 1 && !model.output)
    warnings.push(`the model has outputs [${outputs.map((o) => o.name).join(', ')}]: scores come from "${output.name}" (${choice.why})`);
  return {
    inputName: input.name,
    outputName: output.name,
    outputNames: outputs.map((o) => o.name),
    inputSize,
    classCount,
    ...(batch === 1 ? { maxBatch: 1 } : {}),
    warnings,
  };
}

/**
 * A labels file must name every class of the output, once: one short or one over is named
 * as ImageNet's background class (TF Hub's 1001-class models have it first).
 */
export function checkClassCount(
  model: Pick<ModelSpec, 'labels' | 'source'>,
  labels: string[],
  outputName: string,
  classCount: number,
  shape = `[batch, ${classCount}]`,
): void {
  if (labels.length === classCount - 1) {
    throw new ObjinferError(
      ErrorType.ModelShapeMismatch,
      `model.labels (${model.labels}) has ${labels.length} labels but output "${outputName}" of ${model.source} has ${classCount} classes: one more, as ImageNet ` +
        `models with a background class first have (TF Hub's ${classCount}-class ones): add a first line "background" to the labels file`,
    );
  }
  if (labels.length === classCount + 1) {
    throw new ObjinferError(
      ErrorType.ModelShapeMismatch,
      `model.labels (${model.labels}) has ${labels.length} labels but output "${outputName}" of ${model.source} has ${classCount} classes: one fewer` +
        `${/^background$/i.test(labels[0] ?? '') ? '; the labels start with "background", which this model has no class for: remove that first line' : '; use the labels file that belongs to this model'}`,
    );
  }
  if (labels.length !== classCount) {
    throw new ObjinferError(
      ErrorType.ModelShapeMismatch,
      `model.labels (${model.labels}) has ${labels.length} labels (blank lines are not counted) but output "${outputName}" of ${model.source} has ${classCount} classes ${shape}; use the labels file that belongs to this model`,
    );
  }
}
