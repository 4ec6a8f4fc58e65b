/**
 * Files objinfer writes for people (exports, reports): never over a file the pipeline reads
 * or keeps (an export onto the warehouse once destroyed every result), and always through a
 * temporary file renamed into place, so that a failed write leaves nothing half-done.
 */
import { existsSync, realpathSync, statSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { RunSpec } from './config';
import { globMatcher, patternToPath } from './glob';

/** Why `out` must not be written, or undefined when it may. */
export function protectedOutput(out: string, spec: RunSpec, configFile?: string, kind: 'file' | 'folder' = 'file'): string | undefined {
  const target = resolve(out);
  const folder = dirname(target);
  if (!existsSync(folder)) return `the folder ${folder} does not exist; create it or choose another --out`;
  if (kind === 'file' && existsSync(target) && statSync(target).isDirectory()) return `${target} is a folder; give a file name (--out FILE)`;
  if (kind === 'folder' && existsSync(target) && !isEarlierExport(target))
    return `${target} exists and is not an earlier objinfer export (no ${EXPORT_MARK} in it); choose a new folder (--out DIR)`;
  const real = join(realpathSync(folder), basename(target));
  const same = (path: string | undefined) => {
    if (!path || !existsSync(path)) return path !== undefined && resolve(path) === target;
    if (realpathSync(path) === real) return true;
    const [a, b] = [statSync(path), existsSync(target) ? statSync(target) : undefined];
    return b !== undefined && a.dev === b.dev && a.ino === b.ino;
  };
  const kept: [string | undefined, string][] = [
    [spec.local.warehouse, 'the warehouse (local.warehouse)'],
    [`${spec.local.warehouse}.wal`, "the warehouse's write-ahead log"],
    [configFile && resolve(configFile), 'the config'],
    [spec.model.source, 'the model (model.source)'],
    [spec.model.labels, 'the labels (model.labels)'],
  ];
  const hit = kept.find(([path]) => same(path));
  if (hit) return `${target} is ${hit[1]}; writing there would destroy it: choose another --out`;
  if (spec.backend === 'local') {
    const bucket = resolve(spec.local.storage, spec.bucket);
    if (real.startsWith(`${bucket}/`) || target.startsWith(`${bucket}/`))
      return `${target} is inside the pipeline's bucket folder ${bucket}: choose another --out`;
    const image = spec.sourceUris.find((uri) => {
      const matches = globMatcher(patternToPath(uri));
      return matches(target) || matches(real);
    });
    if (image) return `${target} is matched by sourceUris (${image}): it would be listed as an image, or overwrite one; choose another --out`;
  }
  return undefined;
}

/** The file that marks a folder objinfer wrote, so that a second export may replace it and nothing else. */
export const EXPORT_MARK = 'data.json';

const isEarlierExport = (path: string) => statSync(path).isDirectory() && existsSync(join(path, EXPORT_MARK));

/** Writes the folder `out` by `write(temporaryFolder)` and renames: readers see the old export or the whole new one. */
export async function writeFolderAtomically<T>(out: string, write: (temporary: string) => Promise<T>): Promise<T> {
  const temporary = join(dirname(out), `.${basename(out)}.partial-${process.pid}`);
  const previous = join(dirname(out), `.${basename(out)}.previous-${process.pid}`);
  try {
    await rm(temporary, { recursive: true, force: true });
    await mkdir(temporary);
    const result = await write(temporary);
    if (existsSync(out)) await rename(out, previous);
    await rename(temporary, out);
    await rm(previous, { recursive: true, force: true });
    return result;
  } catch (error) {
    await rm(temporary, { recursive: true, force: true });
    throw error;
  }
}

/** Writes `out` by `write(temporaryPath)` and a rename: readers see the old file or the whole new one. */
export async function writeAtomically<T>(out: string, write: (temporary: string) => Promise<T>): Promise<T> {
  const temporary = join(dirname(out), `.${basename(out)}.partial-${process.pid}`);
  try {
    const result = await write(temporary);
    await rename(temporary, out);
    return result;
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}
