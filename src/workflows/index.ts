export { inferencePipeline } from './pipeline';
export { scheduledPipeline } from './scheduled';
export { cleanupPipeline } from './cleanup';
export { watchPipeline } from './watch';
