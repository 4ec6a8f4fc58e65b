/** A Temporal dev server of a test's own, to kill and start again on the same ports and database. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findTemporalCli, type DevServerOptions } from '../../src/temporal/devServer';
import { freePortsOutsideEphemeralRange } from './ports';

/** Ports below the kernel's ephemeral range (ports.ts says why) and a database of its own. */
export async function restartableServerOptions(label: string): Promise<DevServerOptions> {
  const [port, uiPort] = (await freePortsOutsideEphemeralRange(2)) as [number, number];
  const state = mkdtempSync(join(tmpdir(), `objinfer-${label}-`));
  return { cliPath: findTemporalCli()!, port, uiPort, dbFile: join(state, 'temporal.db'), logFile: join(state, 'temporal.log'), detached: true };
}
