/** `objinfer watch`'s settings: plain data, read by workflow code too (so nothing here may load Node modules). */
/** How `objinfer watch` gathers changes (milliseconds). */
export interface WatchSettings {
  /** A micro-batch closes after this long without a new change... */
  debounceMs: number;
  /** ...or this long after its first change, whichever comes first (a steady stream is never quiet)... */
  maxWaitMs: number;
  /** ...or when it holds this many objects. */
  maxBatch: number;
  /** The whole source is listed again this often (and whenever a watcher starts), for changes no event announced. */
  reconcileEveryMs: number;
}

export const WATCH_DEFAULTS: WatchSettings = { debounceMs: 300, maxWaitMs: 1000, maxBatch: 500, reconcileEveryMs: 600_000 };

export function watchSettings(spec: { watch?: WatchSettings }): WatchSettings {
  return spec.watch ?? WATCH_DEFAULTS;
}
