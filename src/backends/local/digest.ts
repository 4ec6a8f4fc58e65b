/**
 * File digests (MD5 for the files objinfer copies into buckets, as Cloud Storage reports
 * them; SHA-256 for model versions), remembered per process by the file's identity and change
 * stamps: a file whose size, mtime, ctime and inode are unchanged has unchanged bytes (ctime
 * cannot be set back; the object table relies on the same rule), so a later run does not read
 * it again.
 * Hashing a 100 MB model and its bucket copy took about a second of every run.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';

type Algorithm = 'md5' | 'sha256';

const known = new Map<string, { stamp: string; digest: string }>();
const MAX_KNOWN = 200_000;

async function stampOf(path: string | Buffer): Promise<string> {
  const info = await stat(path, { bigint: true });
  return `${info.size}:${info.mtimeNs}:${info.ctimeNs}:${info.ino}:${info.dev}`;
}

/** The digest of a file's bytes, read as a stream (any size, constant memory) unless remembered. */
export async function fileDigest(path: string | Buffer, algorithm: Algorithm, encoding: 'base64' | 'hex'): Promise<string> {
  const key = `${algorithm}:${encoding}:${Buffer.from(path).toString('base64')}`;
  const before = await stampOf(path);
  const remembered = known.get(key);
  if (remembered?.stamp === before) return remembered.digest;
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  const digest = hash.digest(encoding);
  // Remembered only when nothing changed while it was read.
  if ((await stampOf(path)) === before) {
    if (known.size >= MAX_KNOWN) known.clear();
    known.set(key, { stamp: before, digest });
  }
  return digest;
}
