import type { PipelineConfig } from '../config';
import type { Backend, BackendFactory } from './backend';
import { createGcpBackend } from './gcp';
import { createLocalBackend } from './local';

export type { Backend, BackendFactory } from './backend';

/** Picks the adapter named by `config.backend`. */
export const backendFor: BackendFactory = (config: PipelineConfig): Backend => {
  switch (config.backend) {
    case 'local':
      return createLocalBackend(config);
    case 'gcp':
      return createGcpBackend(config);
  }
};
