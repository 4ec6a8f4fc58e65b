/**
 * How a backend says why a step is waiting (a warehouse locked by another process, IAM
 * not propagated yet), or what a long step is doing (a big bucket's listing), without
 * knowing who listens: the activity that runs the step listens, and heartbeats it so that
 * `objinfer run` can show it.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

/** The newest replaces the last; `waitOver` says only that the step no longer waits. */
export type StepNews = { waiting: string } | { doing: string } | { waitOver: true };

const listeners = new AsyncLocalStorage<(news: StepNews) => void>();

export function listeningForWaits<T>(listener: (news: StepNews) => void, work: () => Promise<T>): Promise<T> {
  return listeners.run(listener, work);
}

export function reportWaiting(why: string): void {
  listeners.getStore()?.({ waiting: why });
}

/** What a long step is at, e.g. "listed 120 000 files": it moves, so it no longer waits. */
export function reportDoing(what: string): void {
  listeners.getStore()?.({ doing: what });
}

/** The wait reported last is over (the lock was had): what a watcher shows of it is stale now. */
export function reportWaitOver(): void {
  listeners.getStore()?.({ waitOver: true });
}
