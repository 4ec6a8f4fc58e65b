import { resolve } from 'node:path';

/** The state folder for the demo: OBJINFER_HOME or ./.objinfer. */
export function stateDir(env = process.env): string {
  return resolve(env.OBJINFER_HOME ?? '.objinfer');
}
