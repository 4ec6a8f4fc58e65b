/**
 * File digests (MD5 for the files objinfer copies into buckets, as Cloud Storage reports
 * them; SHA-256 for model versions), remembered by the file's identity and change stamps: a
 * file whose size, mtime, ctime and inode are unchanged has unchanged bytes (ctime cannot be
 * set back; the object table relies on the same rule), so a later run does not read it again.
 * Hashing a 100 MB model and its bucket copy took about a second of every run. They are
 * remembered across processes too, in the cache folder (stateDir.ts cacheDir): each
 * `objinfer run` is a process of its own, and hashing a 100 MB model (SHA-256 for its version,
 * MD5 of it and of its bucket copy) cost it 0.5 s (bench/measures/endtoend.ts). They are
 * written there by `saveDigests`, which the model's upload calls, not by every hash: the model
 * check before a run writes nothing, so a bad model leaves nothing behind.
 */
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { cacheDir } from '../../stateDir';

type Algorithm = 'md5' | 'sha256';

type Known = Map<string, { stamp: string; digest: string }>;
let known: Known | undefined;
/** Whether this process learned digests the cache file does not hold yet. */
let unsaved = false;
const MAX_KNOWN = 200_000;
/** Digests kept in the cache file: models and labels, not every image. */
const MAX_PERSISTED = 1000;
const CACHE_FILE = 'digests.json';

/** What this process knows, starting from what earlier processes left in the cache file. */
function remembered(): Known {
  if (known) return known;
  known = new Map();
  try {
    const entries = JSON.parse(readFileSync(join(cacheDir(), CACHE_FILE), 'utf8')) as unknown;
    if (Array.isArray(entries)) {
      for (const entry of entries) {
        if (Array.isArray(entry) && entry.length === 3 && entry.every((part) => typeof part === 'string')) {
          known.set(entry[0] as string, { stamp: entry[1] as string, digest: entry[2] as string });
        }
      }
    }
  } catch {
    // No cache yet, or one that cannot be read: digests are computed again.
  }
  return known;
}

/**
 * Writes the newest digests to the cache file, whole or not at all (a rename); a failure only
 * costs a later hash, and so does an entry another process wrote meanwhile (the last writer's
 * file stands).
 */
export function saveDigests(): void {
  if (!known || !unsaved) return;
  unsaved = false;
  try {
    const dir = cacheDir();
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const entries = [...known].slice(-MAX_PERSISTED).map(([key, { stamp, digest }]) => [key, stamp, digest]);
    const partial = join(dir, `${CACHE_FILE}.${process.pid}`);
    writeFileSync(partial, JSON.stringify(entries), { mode: 0o600 });
    renameSync(partial, join(dir, CACHE_FILE));
  } catch {
    // A read-only home: digests are remembered by this process only.
  }
}

async function stampOf(path: string | Buffer): Promise<string> {
  const info = await stat(path, { bigint: true });
  return `${info.size}:${info.mtimeNs}:${info.ctimeNs}:${info.ino}:${info.dev}`;
}

/** The digest of a file's bytes, read as a stream (any size, constant memory) unless remembered. */
export async function fileDigest(path: string | Buffer, algorithm: Algorithm, encoding: 'base64' | 'hex'): Promise<string> {
  const key = `${algorithm}:${encoding}:${Buffer.from(path).toString('base64')}`;
  const before = await stampOf(path);
  const memory = remembered();
  const earlier = memory.get(key);
  if (earlier?.stamp === before) return earlier.digest;
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  const digest = hash.digest(encoding);
  // Remembered only when nothing changed while it was read.
  if ((await stampOf(path)) === before) {
    if (memory.size >= MAX_KNOWN) memory.clear();
    memory.delete(key); // the newest last, for the cache file's cut
    memory.set(key, { stamp: before, digest });
    unsaved = true;
  }
  return digest;
}
