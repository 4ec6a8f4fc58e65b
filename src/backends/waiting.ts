/**
 * How a backend says why a step is waiting (a warehouse locked by another process, IAM
 * not propagated yet) without knowing who listens: the activity that runs the step
 * listens, and heartbeats the reason so that `objinfer run` can show it.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

const listeners = new AsyncLocalStorage<(why: string) => void>();

export function listeningForWaits<T>(listener: (why: string) => void, work: () => Promise<T>): Promise<T> {
  return listeners.run(listener, work);
}

export function reportWaiting(why: string): void {
  listeners.getStore()?.(why);
}
