/**
 * A ResNet-50-shaped classifier with seeded random weights: the same layers, shapes and
 * cost per image as the tutorial's model, for benchmarks (its answers mean nothing).
 * Input float32 NHWC [batch, size, size, 3], like the TensorFlow original; output softmax
 * scores [batch, classes]. Batch norm is folded into the convolutions' biases.
 */
import { encodeModel, type NodeSpec, type TensorInit } from '../../src/models/onnxWriter';
import { seededRandom } from '../../src/models/random';

export interface ResnetOptions {
  inputSize?: number;
  classes?: number;
  /** Channels of the first stage (64 in ResNet-50). */
  width?: number;
  /** Bottleneck blocks per stage ([3, 4, 6, 3] in ResNet-50). */
  blocks?: number[];
  seed?: number;
}

export const RESNET_INPUT = 'input_1';
export const RESNET_OUTPUT = 'activation_49';

export function resnetOnnx(options: ResnetOptions = {}): Buffer {
  const { inputSize = 224, classes = 1000, width = 64, blocks = [3, 4, 6, 3], seed = 1 } = options;
  const random = seededRandom(seed);
  const nodes: NodeSpec[] = [];
  const initializers: TensorInit[] = [];
  let counter = 0;
  const fresh = (prefix: string) => `${prefix}_${counter++}`;

  const conv = (input: string, inChannels: number, outChannels: number, kernel: number, stride: number, gain = 1): string => {
    const weight = fresh('w');
    const bias = fresh('b');
    const fanIn = inChannels * kernel * kernel;
    initializers.push({
      name: weight,
      dims: [outChannels, inChannels, kernel, kernel],
      values: randomValues(outChannels * fanIn, gain * Math.sqrt(1 / fanIn), random),
    });
    initializers.push({ name: bias, dims: [outChannels], values: new Float32Array(outChannels) });
    const output = fresh('conv');
    const pad = Math.floor(kernel / 2);
    nodes.push({
      opType: 'Conv',
      inputs: [input, weight, bias],
      outputs: [output],
      intLists: { kernel_shape: [kernel, kernel], strides: [stride, stride], pads: [pad, pad, pad, pad] },
    });
    return output;
  };
  const relu = (input: string): string => {
    const output = fresh('relu');
    nodes.push({ opType: 'Relu', inputs: [input], outputs: [output] });
    return output;
  };

  nodes.push({ opType: 'Transpose', inputs: [RESNET_INPUT], outputs: ['nchw'], intLists: { perm: [0, 3, 1, 2] } });
  let x = relu(conv('nchw', 3, width, 7, 2));
  nodes.push({ opType: 'MaxPool', inputs: [x], outputs: ['pooled'], intLists: { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] } });
  x = 'pooled';
  let channels = width;
  blocks.forEach((count, stage) => {
    const inner = width * 2 ** stage;
    const outer = inner * 4;
    for (let block = 0; block < count; block++) {
      const stride = block === 0 && stage > 0 ? 2 : 1;
      const shortcut = block === 0 ? conv(x, channels, outer, 1, stride) : x;
      let y = relu(conv(x, channels, inner, 1, 1));
      y = relu(conv(y, inner, inner, 3, stride));
      y = conv(y, inner, outer, 1, 1, 0.2); // a small residual keeps activations in range
      const sum = fresh('add');
      nodes.push({ opType: 'Add', inputs: [shortcut, y], outputs: [sum] });
      x = relu(sum);
      channels = outer;
    }
  });
  nodes.push({ opType: 'GlobalAveragePool', inputs: [x], outputs: ['gap'] });
  nodes.push({ opType: 'Flatten', inputs: ['gap'], outputs: ['features'], ints: { axis: 1 } });
  initializers.push({ name: 'fc_w', dims: [channels, classes], values: randomValues(channels * classes, Math.sqrt(1 / channels), random) });
  initializers.push({ name: 'fc_b', dims: [classes], values: new Float32Array(classes) });
  nodes.push({ opType: 'Gemm', inputs: ['features', 'fc_w', 'fc_b'], outputs: ['logits'] });
  nodes.push({ opType: 'Softmax', inputs: ['logits'], outputs: [RESNET_OUTPUT], ints: { axis: 1 } });

  return encodeModel({
    name: 'resnet50_shaped',
    inputs: [{ name: RESNET_INPUT, dims: ['batch', inputSize, inputSize, 3] }],
    outputs: [{ name: RESNET_OUTPUT, dims: ['batch', classes] }],
    initializers,
    nodes,
  });
}

/** Uniform values with the given standard deviation. */
function randomValues(count: number, std: number, random: () => number): Float32Array {
  const out = new Float32Array(count);
  const limit = std * Math.sqrt(3);
  for (let i = 0; i < count; i++) out[i] = (random() * 2 - 1) * limit;
  return out;
}
