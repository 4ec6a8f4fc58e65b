import { join, resolve } from 'node:path';

export const PROJECT_ROOT = resolve(__dirname, '..', '..');
export const TEST_STATE = join(PROJECT_ROOT, '.objinfer', 'test');
export const SERVER_FILE = join(TEST_STATE, 'temporal-server.json');
export const WORKFLOW_BUNDLE = join(TEST_STATE, 'workflow-bundle.js');
export const CLI = join(PROJECT_ROOT, 'bin', 'objinfer');

export interface TestServer {
  address: string;
  uiUrl: string;
  pid: number;
  /** The run's own temporary folder (TMPDIR for every test process), removed when the run ends. */
  tmp?: string;
}

/** The test server suggests continue-as-new once a run's history has this many events. */
export const SUGGEST_CONTINUE_AS_NEW_AFTER_EVENTS = 150;
