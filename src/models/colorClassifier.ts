import { encodeModel } from './onnxWriter';

/**
 * A tiny image classifier whose answers can be checked by eye: it labels an image with
 * the named colour nearest to its mean RGB. Input: float32 NHWC [batch, size, size, 3]
 * in [0, 1]; output: softmax probabilities over COLOR_LABELS.
 *
 * Graph: ReduceMean over H and W, then a linear layer, then Softmax. Nearest-prototype
 * is linear because -s·|x - c|² = 2s·x·c - s·|c|² - s·|x|², and the last term is the
 * same for every class.
 */
export const COLOR_PROTOTYPES = {
  red: [1, 0, 0],
  green: [0, 1, 0],
  blue: [0, 0, 1],
  yellow: [1, 1, 0],
  cyan: [0, 1, 1],
  magenta: [1, 0, 1],
  white: [1, 1, 1],
  black: [0, 0, 0],
} as const satisfies Record<string, readonly [number, number, number]>;

export type ColorLabel = keyof typeof COLOR_PROTOTYPES;
export const COLOR_LABELS = Object.keys(COLOR_PROTOTYPES) as ColorLabel[];

export const COLOR_MODEL_INPUT = 'pixels';
export const COLOR_MODEL_OUTPUT = 'scores';

/** Sharpness of the softmax; large enough that a clear colour gets a clear winner. */
const SHARPNESS = 6;

/** `batch`: the input's batch dimension, dynamic unless a fixed size is given (hostile-model tests). */
export function colorClassifierOnnx(inputSize = 32, batch: number | string = 'batch'): Buffer {
  const classes = COLOR_LABELS.length;
  const weights = new Float32Array(3 * classes);
  const bias = new Float32Array(classes);
  COLOR_LABELS.forEach((label, k) => {
    const c = COLOR_PROTOTYPES[label];
    for (let channel = 0; channel < 3; channel++) weights[channel * classes + k] = 2 * SHARPNESS * c[channel]!;
    bias[k] = -SHARPNESS * (c[0] ** 2 + c[1] ** 2 + c[2] ** 2);
  });
  return encodeModel({
    name: 'color_classifier',
    inputs: [{ name: COLOR_MODEL_INPUT, dims: [batch, inputSize, inputSize, 3] }],
    outputs: [{ name: COLOR_MODEL_OUTPUT, dims: [batch, classes] }],
    initializers: [
      { name: 'weights', dims: [3, classes], values: weights },
      { name: 'bias', dims: [classes], values: bias },
    ],
    nodes: [
      { opType: 'ReduceMean', inputs: [COLOR_MODEL_INPUT], outputs: ['mean_rgb'], intLists: { axes: [1, 2] }, ints: { keepdims: 0 } },
      { opType: 'Gemm', inputs: ['mean_rgb', 'weights', 'bias'], outputs: ['logits'] },
      { opType: 'Softmax', inputs: ['logits'], outputs: [COLOR_MODEL_OUTPUT], ints: { axis: 1 } },
    ],
  });
}

export function colorLabelsFile(): string {
  return COLOR_LABELS.join('\n') + '\n';
}
