export * from './colorClassifier';
export { encodeModel, type GraphSpec } from './onnxWriter';
export { resnetOnnx, RESNET_INPUT, RESNET_OUTPUT, type ResnetOptions } from './resnet';
export { seededRandom } from './random';
