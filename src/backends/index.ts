/** Picks the adapter the spec names. */
import type { RunSpec } from '../config';
import { createGcpBackend } from './gcp';
import { createLocalBackend } from './local';
import type { Backend } from './port';

export type { Backend, BackendFactory, ResultsPort } from './port';
export { inspectModel, type ModelInspection } from './inspect';
export { openResults } from './results';

export function createBackend(spec: RunSpec): Backend {
  switch (spec.backend) {
    case 'local':
      return createLocalBackend(spec);
    case 'gcp':
      return createGcpBackend(spec);
  }
}
