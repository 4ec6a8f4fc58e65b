/** Picks the adapter the spec names. */
import type { RunSpec } from '../config';
import { createLocalBackend } from './local';
import type { Backend } from './port';

export type { Backend, BackendFactory, ResultsPort } from './port';
export { inspectModel, type ModelInspection } from './inspect';
export { openResults } from './results';

export function createBackend(spec: RunSpec): Backend {
  switch (spec.backend) {
    case 'local':
      return createLocalBackend(spec);
    case 'gcp': {
      // Required here, not imported above: Google's clients take about 0.3 s to load, which
      // every local run and local worker paid (bench/measures/endtoend.ts).
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { createGcpBackend } = require('./gcp') as typeof import('./gcp');
      return createGcpBackend(spec);
    }
  }
}
