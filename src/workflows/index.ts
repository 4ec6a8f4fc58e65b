export { inferencePipeline } from './pipeline';
