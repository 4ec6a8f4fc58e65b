/** The models the project generates load in ONNX Runtime and behave as documented. */
import * as ort from 'onnxruntime-node';
import { COLOR_LABELS, colorClassifierOnnx, COLOR_MODEL_INPUT, COLOR_MODEL_OUTPUT } from '../src/models/colorClassifier';
import { resnetOnnx, RESNET_INPUT, RESNET_OUTPUT } from '../bench/models/resnet';

function solid(size: number, rgb: [number, number, number][]): Float32Array {
  const data = new Float32Array(rgb.length * size * size * 3);
  rgb.forEach((colour, n) => {
    for (let i = 0; i < size * size; i++) data.set(colour, (n * size * size + i) * 3);
  });
  return data;
}

test('the colour classifier labels an image by the named colour nearest its mean', async () => {
  const session = await ort.InferenceSession.create(colorClassifierOnnx(8));
  expect(session.inputNames).toEqual([COLOR_MODEL_INPUT]);
  // Mean colours and their nearest prototype, worked out by hand.
  const cases: [[number, number, number], string][] = [
    [[0.9, 0.1, 0.1], 'red'],
    [[0.1, 0.8, 0.2], 'green'],
    [[0.2, 0.1, 0.7], 'blue'],
    [[0.8, 0.9, 0.1], 'yellow'],
    [[0.1, 0.7, 0.9], 'cyan'],
    [[0.8, 0.2, 0.9], 'magenta'],
    [[0.9, 0.85, 0.95], 'white'],
    [[0.1, 0.15, 0.05], 'black'],
  ];
  const out = await session.run({
    [COLOR_MODEL_INPUT]: new ort.Tensor(
      'float32',
      solid(
        8,
        cases.map((c) => c[0]),
      ),
      [cases.length, 8, 8, 3],
    ),
  });
  const scores = out[COLOR_MODEL_OUTPUT]!;
  expect(scores.dims).toEqual([cases.length, COLOR_LABELS.length]);
  const data = scores.data as Float32Array;
  const winners = cases.map((_, n) => {
    const row = Array.from(data.subarray(n * 8, n * 8 + 8));
    expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    return COLOR_LABELS[row.indexOf(Math.max(...row))];
  });
  expect(winners).toEqual(cases.map((c) => c[1]));
});

test('the ResNet-shaped model takes NHWC images and returns a softmax per image', async () => {
  const bytes = resnetOnnx({ inputSize: 32, classes: 10, width: 4, blocks: [1, 1, 1, 1] });
  const session = await ort.InferenceSession.create(bytes);
  expect(session.inputNames).toEqual([RESNET_INPUT]);
  expect(session.outputNames).toEqual([RESNET_OUTPUT]);
  const out = await session.run({
    [RESNET_INPUT]: new ort.Tensor(
      'float32',
      solid(32, [
        [0.2, 0.4, 0.6],
        [0.9, 0.1, 0.5],
      ]),
      [2, 32, 32, 3],
    ),
  });
  const scores = out[RESNET_OUTPUT]!;
  expect(scores.dims).toEqual([2, 10]);
  const data = Array.from(scores.data as Float32Array);
  expect(data.slice(0, 10).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
  expect(data.every(Number.isFinite)).toBe(true);
  // Seeded: the same options give the same bytes.
  expect(resnetOnnx({ inputSize: 32, classes: 10, width: 4, blocks: [1, 1, 1, 1] }).equals(bytes)).toBe(true);
});
