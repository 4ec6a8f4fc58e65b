/**
 * Models for tests, whose outputs are what a confident, broken or unusual model gives:
 * exact integers, NaN, infinities, negative logits, several outputs. Each takes the usual
 * NHWC float input and pools it to the mean colour first, so its answer can depend on the
 * image.
 */
import { encodeModel, type GraphSpec, type NodeSpec, type TensorInit } from '../../src/models/onnxWriter';

const INPUT = 'pixels';

function pooled(size: number): { input: GraphSpec['inputs'][number]; nodes: NodeSpec[] } {
  return {
    input: { name: INPUT, dims: ['batch', size, size, 3] },
    nodes: [{ opType: 'ReduceMean', inputs: [INPUT], outputs: ['mean_rgb'], intLists: { axes: [1, 2] }, ints: { keepdims: 0 } }],
  };
}

const tensor = (name: string, dims: number[], values: number[]): TensorInit => ({ name, dims, values: Float32Array.from(values) });

/** Every image gets exactly these scores (`mean_rgb * 0 + scores`). */
export function constantScoresModel(scores: number[], size = 8): Buffer {
  const { input, nodes } = pooled(size);
  return encodeModel({
    name: 'constant_scores',
    inputs: [input],
    outputs: [{ name: 'scores', dims: ['batch', scores.length] }],
    initializers: [tensor('zero_weights', [3, scores.length], new Array(3 * scores.length).fill(0)), tensor('bias', [scores.length], scores)],
    nodes: [...nodes, { opType: 'Gemm', inputs: ['mean_rgb', 'zero_weights', 'bias'], outputs: ['scores'] }],
  });
}

/**
 * Three classes, one per colour channel, scored `op(mean channel value)`: `log` gives
 * -Infinity for a channel at 0, `sqrt-half` (sqrt(x - 0.5)) gives NaN for a channel below
 * half, `linear` gives the mean itself (1 exactly for a saturated channel, 0 for an empty one).
 */
export function channelModel(op: 'log' | 'sqrt-half' | 'linear', size = 8): Buffer {
  const { input, nodes } = pooled(size);
  const tail: NodeSpec[] =
    op === 'log'
      ? [{ opType: 'Log', inputs: ['mean_rgb'], outputs: ['scores'] }]
      : op === 'sqrt-half'
        ? [
            { opType: 'Sub', inputs: ['mean_rgb', 'half'], outputs: ['shifted'] },
            { opType: 'Sqrt', inputs: ['shifted'], outputs: ['scores'] },
          ]
        : [{ opType: 'Identity', inputs: ['mean_rgb'], outputs: ['scores'] }];
  return encodeModel({
    name: `channel_${op}`,
    inputs: [input],
    outputs: [{ name: 'scores', dims: ['batch', 3] }],
    initializers: op === 'sqrt-half' ? [tensor('half', [1], [0.5])] : [],
    nodes: [...nodes, ...tail],
  });
}

/** A model with several outputs: pooled features [batch, 3], logits [batch, 2] and probabilities [batch, 2]. */
export function multiOutputModel(size = 8): Buffer {
  const { input, nodes } = pooled(size);
  return encodeModel({
    name: 'multi_output',
    inputs: [input],
    outputs: [
      { name: 'features', dims: ['batch', 3] },
      { name: 'logits', dims: ['batch', 2] },
      { name: 'probabilities', dims: ['batch', 2] },
    ],
    initializers: [tensor('weights', [3, 2], [4, -4, 0, 0, 0, 0]), tensor('bias', [2], [-2, 2])],
    nodes: [
      ...nodes,
      { opType: 'Identity', inputs: ['mean_rgb'], outputs: ['features'] },
      { opType: 'Gemm', inputs: ['mean_rgb', 'weights', 'bias'], outputs: ['logits'] },
      { opType: 'Softmax', inputs: ['logits'], outputs: ['probabilities'], ints: { axis: 1 } },
    ],
  });
}

/** A model whose only output is not [batch, classes] (here [batch, width, 3]). */
export function rank3OutputModel(size = 8): Buffer {
  return encodeModel({
    name: 'rank3',
    inputs: [{ name: INPUT, dims: ['batch', size, size, 3] }],
    outputs: [{ name: 'grid', dims: ['batch', size, 3] }],
    initializers: [],
    nodes: [{ opType: 'ReduceMean', inputs: [INPUT], outputs: ['grid'], intLists: { axes: [1] }, ints: { keepdims: 0 } }],
  });
}
