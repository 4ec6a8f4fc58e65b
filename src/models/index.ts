export * from './colorClassifier';
export { encodeModel, type GraphSpec } from './onnxWriter';
