export { inferencePipeline } from './pipeline';
export { cleanupPipeline } from './cleanup';
