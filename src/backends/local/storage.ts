/**
 * Local object storage: files on disk addressed by file:// URIs. Listing follows
 * BigQuery's object-table wildcard rule: `*` matches any run of characters, "/" included.
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, rename, stat } from 'node:fs/promises';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface ObjectMetadata {
  uri: string;
  /** The file's modification time in microseconds: a new write is a new generation. */
  generation: bigint;
  contentType: string;
  size: number;
  updated: Date;
}

const CONTENT_TYPES: Record<string, string> = {
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.png': 'image/png',
  '.bmp': 'image/bmp',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
};

/** The folder a pattern starts in: everything before its first wildcard. */
export function patternRoot(uri: string): string {
  const path = uriToPath(uri);
  const staticPart = path.split(/[*?]/)[0]!;
  return staticPart.endsWith('/') ? staticPart.slice(0, -1) : dirname(staticPart);
}

export function uriToPath(uri: string): string {
  return fileURLToPath(uri.replace(/\*/g, '%2A').replace(/\?/g, '%3F')).replace(/%2A/g, '*').replace(/%3F/g, '?');
}

export function pathToUri(path: string): string {
  return pathToFileURL(path).href;
}

function patternToRegExp(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`);
}

async function* walk(dir: string): AsyncGenerator<string> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(path);
    else if (entry.isFile()) yield path;
  }
}

/** Lists the objects matching any of the patterns, each once, in a stable order. */
export async function listObjects(patterns: string[]): Promise<ObjectMetadata[]> {
  const seen = new Map<string, ObjectMetadata>();
  for (const pattern of patterns) {
    const path = uriToPath(pattern);
    const matcher = patternToRegExp(path);
    for await (const file of walk(patternRoot(pattern))) {
      if (!matcher.test(file)) continue;
      const uri = pathToUri(file);
      if (seen.has(uri)) continue;
      const info = await stat(file, { bigint: true });
      seen.set(uri, {
        uri,
        generation: info.mtimeNs / 1000n,
        contentType: CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
        size: Number(info.size),
        updated: new Date(Number(info.mtimeMs)),
      });
    }
  }
  return [...seen.values()];
}

export async function md5Base64(path: string): Promise<string> {
  return createHash('md5').update(await readFile(path)).digest('base64');
}

/** Copies `source` to `target` unless an identical file is there; returns whether it copied. */
export async function copyIfChanged(source: string, target: string): Promise<boolean> {
  const existing = await md5Base64(target).catch(() => undefined);
  if (existing !== undefined && existing === (await md5Base64(source))) return false;
  await mkdir(dirname(target), { recursive: true });
  const partial = `${target}.partial-${process.pid}`;
  await copyFile(source, partial);
  await rename(partial, target); // readers see the old file or the whole new one
  return true;
}
