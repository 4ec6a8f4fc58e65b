/**
 * Starts one real Temporal dev server (the CLI, with SQLite and objinfer's search
 * attributes) for the whole suite, on free ports, and bundles the workflow code once.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeWorkflowBundle } from '../../src/temporal/bundleWorkflows';
import { findTemporalCli, startDevServer } from '../../src/temporal/devServer';
import { freePorts } from './ports';
import { removeSuiteTmp } from './suiteTmp';
import { SERVER_FILE, SUGGEST_CONTINUE_AS_NEW_AFTER_EVENTS, TEST_STATE, WORKFLOW_BUNDLE, type TestServer } from './paths';

/**
 * A server left by an interrupted earlier run would hold the old database open: stop it
 * first, but only when the PID still belongs to it (a stale PID may be anyone's now).
 */
function stopLeftoverServer(): void {
  if (!existsSync(SERVER_FILE)) return;
  const { pid, tmp } = JSON.parse(readFileSync(SERVER_FILE, 'utf8')) as TestServer;
  if (tmp) removeSuiteTmp(tmp);
  const commandLine = (() => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      return '';
    }
  })();
  if (!commandLine.includes('start-dev') || !commandLine.includes(TEST_STATE)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

export default async function globalSetup(): Promise<void> {
  stopLeftoverServer();
  rmSync(TEST_STATE, { recursive: true, force: true });
  mkdirSync(TEST_STATE, { recursive: true });
  // Every test's temporary files in one folder, outside the clone (a test reads some as another
  // user, who may not enter it), that globalTeardown removes: a run leaves nothing in /tmp.
  const tmp = mkdtempSync(join(tmpdir(), 'objinfer-suite-'));
  chmodSync(tmp, 0o755);
  process.env.TMPDIR = tmp;
  const cliPath = findTemporalCli();
  if (!cliPath) {
    throw new Error('no Temporal CLI found: run `make tools` (or set TEMPORAL_CLI_PATH); the tests need a real dev server');
  }
  const [port, uiPort] = (await freePorts(2)) as [number, number];
  const [server] = await Promise.all([
    startDevServer({
      cliPath,
      port,
      uiPort,
      dbFile: join(TEST_STATE, `temporal-${process.pid}.db`),
      logFile: join(TEST_STATE, 'temporal.log'),
      detached: true,
      startTimeoutMs: 120_000,
      // Suggest continue-as-new early, so that tests of long runs exercise it with few images.
      extraArgs: ['--dynamic-config-value', `limit.historyCount.suggestContinueAsNew=${SUGGEST_CONTINUE_AS_NEW_AFTER_EVENTS}`],
    }),
    writeWorkflowBundle(WORKFLOW_BUNDLE),
  ]);
  const info: TestServer = { address: server.address, uiUrl: server.uiUrl, pid: server.pid, tmp };
  writeFileSync(SERVER_FILE, JSON.stringify(info));
  process.env.TEMPORAL_ADDRESS = server.address;
  process.env.OBJINFER_WORKFLOW_BUNDLE = WORKFLOW_BUNDLE;
}
