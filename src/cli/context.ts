/** What a command needs once it runs: the config it reads and the file it writes (the Temporal it talks to is in ./connect). */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError, loadConfig, type LoadOptions, type RunSpec } from '../config';
import { stateDir } from '../stateDir';
import { protectedOutput } from '../outputFiles';
import { UsageError } from './common';

/** --config, else ./objinfer.yaml, else the demo's config: the spec, and the file it came from. */
export function findConfigFile(file?: string, options: LoadOptions = {}): { spec: RunSpec; file: string } {
  const candidates = file ? [file] : ['objinfer.yaml', join(stateDir(), 'demo', 'objinfer.yaml')];
  const found = candidates.find((c) => existsSync(c));
  if (!found) {
    if (file) throw new ConfigError({ field: '--config', problem: `file not found: ${resolve(file)}` });
    throw new UsageError('no config found', 'pass --config FILE, or run `objinfer demo` first');
  }
  return { spec: loadConfig(found, {}, options), file: resolve(found) };
}

export function findConfig(file?: string, options: LoadOptions = {}): RunSpec {
  return findConfigFile(file, options).spec;
}

/** `--out`, checked: never a file the pipeline keeps or reads (outputFiles.ts). */
export function outputPath(out: string, spec: RunSpec, configFile: string, kind: 'file' | 'folder' = 'file'): string {
  const problem = protectedOutput(out, spec, configFile, kind);
  if (problem) throw new UsageError(problem, 'nothing was written');
  return resolve(out);
}
