export * from './colorClassifier';
export { encodeModel, type GraphSpec } from './onnxWriter';
export { seededRandom } from './random';
