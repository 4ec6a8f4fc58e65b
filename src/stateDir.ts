import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** The state folder for the demo: OBJINFER_HOME or ./.objinfer. */
export function stateDir(env = process.env): string {
  return resolve(env.OBJINFER_HOME ?? '.objinfer');
}

/**
 * Where objinfer keeps what it can compute again (file digests): OBJINFER_HOME/cache when set,
 * else the user's cache directory ($XDG_CACHE_HOME/objinfer, by default ~/.cache/objinfer).
 */
export function cacheDir(env = process.env): string {
  if (env.OBJINFER_HOME) return join(resolve(env.OBJINFER_HOME), 'cache');
  return join(env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache'), 'objinfer');
}
