/**
 * `objinfer watch` on the local backend: file-system events (chokidar, inotify underneath)
 * for the folders the source patterns start in, gathered into micro-batches and recorded in
 * the object table; then the workflow is told how many objects changed. Events say only that
 * a file may have changed: the object table's stat-and-hash rule decides whether it did, so a
 * duplicate or spurious event writes nothing.
 */
import { watch, type FSWatcher } from 'chokidar';
import type { WatchSettings } from '../../config';
import type { WatchOutcome } from '../port';
import { reportDoing } from '../waiting';
import type { LocalContext } from './context';
import { refreshObjectTable } from './objectTable';
import { matchesAny, patternRoot } from './storage';

/**
 * Watches until `signal` aborts or `settings.reconcileEveryMs` is over (the workflow starts
 * the next watcher, whose first listing is the reconcile). The watcher is ready before the
 * whole source is listed once, so a file written between a previous watcher and this one is
 * found by that listing, and one written after it by an event.
 */
export async function watchSource(
  ctx: LocalContext,
  settings: WatchSettings,
  onChanges: (changed: number) => Promise<void>,
  signal: AbortSignal,
): Promise<WatchOutcome> {
  const outcome: WatchOutcome = { events: 0, microBatches: 0, changed: 0 };
  const matches = matchesAny(ctx.spec.sourceUris);
  const batcher = new MicroBatcher(settings, async (paths) => {
    const { changed } = await refreshObjectTable(ctx, { only: paths });
    outcome.microBatches++;
    outcome.changed += changed;
    if (changed > 0) await onChanges(changed);
  });
  const watcher = watch([...new Set(ctx.spec.sourceUris.map(patternRoot))], { ignoreInitial: true, followSymlinks: true });
  watcher.on('all', (event, path) => {
    if (event !== 'add' && event !== 'change' && event !== 'unlink') return;
    const bytes = Buffer.from(path);
    if (!matches(bytes)) return;
    outcome.events++;
    batcher.add(bytes);
  });
  try {
    await ready(watcher, signal);
    reportDoing('watching: listing the whole source once (changes made while nothing watched)');
    const listed = await refreshObjectTable(ctx);
    outcome.reconciled = listed.outcome.detail;
    outcome.changed += listed.changed;
    if (listed.changed > 0) await onChanges(listed.changed);
    reportDoing(`watching ${ctx.spec.sourceUris.join(', ')}`);
    // A micro-batch that cannot be recorded ends this watcher: its retry lists everything again.
    await Promise.race([until(signal, settings.reconcileEveryMs), batcher.failed]);
    return outcome;
  } finally {
    await watcher.close();
    await batcher.flush(); // what was seen is recorded before the next watcher lists
  }
}

function ready(watcher: FSWatcher, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    watcher.once('ready', resolve);
    watcher.once('error', reject);
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

function until(signal: AbortSignal, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
  });
}

/**
 * Gathers paths into micro-batches: one closes `debounceMs` after its last path, `maxWaitMs`
 * after its first (a steady stream is never quiet), or at `maxBatch` paths. Batches are
 * handed on one at a time, in order; paths that come meanwhile go into the next.
 */
export class MicroBatcher {
  private paths = new Map<string, Buffer>();
  private firstAt = 0;
  private timer?: NodeJS.Timeout;
  private running: Promise<void> = Promise.resolve();
  private failure?: unknown;
  private fail!: (error: unknown) => void;
  /** Rejects when a batch could not be taken; nothing more is taken after that. */
  readonly failed = new Promise<never>((_, reject) => (this.fail = reject));

  constructor(
    private readonly settings: Pick<WatchSettings, 'debounceMs' | 'maxWaitMs' | 'maxBatch'>,
    private readonly take: (paths: Buffer[]) => Promise<void>,
    private readonly now: () => number = Date.now,
  ) {
    this.failed.catch(() => undefined); // awaited by whoever races it
  }

  add(path: Buffer): void {
    if (this.failure) return;
    if (this.paths.size === 0) this.firstAt = this.now();
    this.paths.set(path.toString('latin1'), path);
    if (this.paths.size >= this.settings.maxBatch) return this.close();
    clearTimeout(this.timer);
    const wait = Math.min(this.settings.debounceMs, this.firstAt + this.settings.maxWaitMs - this.now());
    this.timer = setTimeout(() => this.close(), Math.max(0, wait));
  }

  /** Hands on what is gathered and waits for every batch to be taken; throws a batch's failure. */
  async flush(): Promise<void> {
    this.close();
    await this.running;
    if (this.failure) throw this.failure;
  }

  private close(): void {
    clearTimeout(this.timer);
    if (this.paths.size === 0) return;
    const batch = [...this.paths.values()];
    this.paths = new Map();
    this.running = this.running.then(() =>
      this.failure
        ? undefined
        : this.take(batch).catch((error: unknown) => {
            this.failure = error;
            this.fail(error);
          }),
    );
  }
}
