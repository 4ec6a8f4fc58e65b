/**
 * Where the SDK's logs go. A person running `objinfer run` wants progress and errors, each
 * on one line: retries are shown by the progress view (with their reason), not as SDK
 * warnings with stack traces and task tokens. `--verbose` (or OBJINFER_LOG_LEVEL) shows
 * everything, still a line per event. `objinfer worker` is a service and logs at INFO.
 * Only commands that run a worker load the SDK's runtime, so the choice is made before any
 * command runs (`chooseVerbosity`) and installed where a worker connects (`installLogging`).
 */
import type { LogLevel } from '@temporalio/worker';
import { printable } from './output';

export type Verbosity = 'quiet' | 'service' | 'verbose';

const LEVELS: Record<Verbosity, LogLevel> = { quiet: 'ERROR', service: 'INFO', verbose: 'DEBUG' };

let chosen: Verbosity = 'quiet';
let installed = false;

export function chooseVerbosity(verbosity: Verbosity): void {
  chosen = verbosity;
}

/** Installs the SDK runtime's logger once per process, before the first native connection; objinfer handles signals itself. */
export async function installLogging(): Promise<void> {
  if (installed) return;
  installed = true;
  const verbosity = chosen;
  const { DefaultLogger, Runtime } = await import('@temporalio/worker');
  const fromEnv = process.env.OBJINFER_LOG_LEVEL?.toUpperCase() as LogLevel | undefined;
  const level = fromEnv ?? LEVELS[verbosity];
  Runtime.install({
    logger: new DefaultLogger(level, (entry) => {
      const meta = entry.meta && verbosity !== 'quiet' ? ` ${compact(entry.meta)}` : '';
      process.stderr.write(`objinfer ${entry.level.toLowerCase()}: ${printable(entry.message.split('\n')[0]!)}${meta}\n`);
    }),
    shutdownSignals: [],
    // Core's own lines go straight to stderr (forwarding them would keep the process alive).
    telemetryOptions: { logging: { filter: { core: level === 'DEBUG' ? 'INFO' : 'ERROR', other: 'ERROR' } } },
  });
}

/** Log metadata on one line, without stack traces or task tokens. */
function compact(meta: Record<string, unknown>): string {
  const shown: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(meta)) {
    if (key === 'taskToken' || key === 'stack' || value === undefined) continue;
    shown[key] = value instanceof Error ? value.message.split('\n')[0] : value;
  }
  return printable(JSON.stringify(shown, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)));
}
