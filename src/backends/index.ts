import type { PipelineConfig } from '../config';
import type { Backend, BackendFactory } from './backend';
import { ErrorType, ObjinferError } from '../errors';
import { createLocalBackend } from './local';

export type { Backend, BackendFactory } from './backend';

/** Picks the adapter named by `config.backend`. */
export const backendFor: BackendFactory = (config: PipelineConfig): Backend => {
  switch (config.backend) {
    case 'local':
      return createLocalBackend(config);
    case 'gcp':
      throw new ObjinferError(ErrorType.InvalidConfig, 'backend: the gcp backend is not available in this version yet; use backend: local');
  }
};
