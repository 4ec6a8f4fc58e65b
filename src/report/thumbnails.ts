/**
 * Thumbnails for the report: small JPEGs as data URIs, made from the images themselves
 * (local files, or objects read through the results' backend, e.g. from Cloud Storage).
 * Decoding goes through the decoder pool (separate processes with a memory cap) and the
 * header's pixel limit, like inference: an image bomb or hostile bytes cost a placeholder,
 * never the command.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { objectPath } from '../backends/local/storage';
import { DecoderPool } from '../images/decoderPool';
import { readHeader } from '../images/header';
import { MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS } from '../images/limits';

/** The longer side of a thumbnail, in pixels. */
export const THUMBNAIL_SIDE = 128;

async function headOf(path: string | Buffer): Promise<Buffer> {
  const file = await open(path, 'r');
  try {
    const head = Buffer.alloc(256 * 1024); // a JPEG's size can sit behind large EXIF blocks
    const { bytesRead } = await file.read(head, 0, head.length, 0);
    return head.subarray(0, bytesRead);
  } finally {
    await file.close();
  }
}

/** Reads an object this process's files do not reach (see ResultsPort.readObject). */
export type ObjectReader = (uri: string, maxBytes: number) => Promise<Buffer>;

export class Thumbnailer {
  private readonly pool = new DecoderPool({ processes: 2 });
  /** A private folder (mode 0700) for objects read from elsewhere while they are decoded. */
  private scratch?: string;
  private downloads = 0;

  constructor(private readonly readObject?: ObjectReader) {}

  /** A data URI for an object, or undefined when it cannot be shown (the reason is in the report already). */
  async thumbnail(uri: string): Promise<string | undefined> {
    try {
      if (uri.startsWith('file://')) {
        const path = objectPath(uri);
        return await this.fromFile(path, await headOf(path));
      }
      if (!this.readObject) return undefined;
      const bytes = await this.readObject(uri, MAX_IMAGE_BYTES);
      this.scratch ??= mkdtempSync(join(tmpdir(), 'objinfer-thumbnails-'));
      const path = join(this.scratch, String(this.downloads++));
      await writeFile(path, bytes, { mode: 0o600 });
      try {
        return await this.fromFile(path, bytes);
      } finally {
        await rm(path, { force: true });
      }
    } catch {
      return undefined;
    }
  }

  /** Decodes in the decoder pool (hostile bytes cost a placeholder) and encodes a small JPEG. */
  private async fromFile(path: string | Buffer, head: Buffer): Promise<string | undefined> {
    const { width, height } = readHeader(head);
    if (width * height > MAX_IMAGE_PIXELS || width === 0 || height === 0) return undefined;
    const scale = Math.min(1, THUMBNAIL_SIDE / Math.max(width, height));
    const w = Math.max(1, Math.round(width * scale));
    const h = Math.max(1, Math.round(height * scale));
    const into = new Float32Array(w * h * 3);
    const outcome = await this.pool.decode({ path, height: h, width: w, preserveAspectRatio: false, into });
    if (!outcome.ok) return undefined;
    const rgb = Buffer.from(Uint8Array.from(into, (v) => Math.round(v * 255)));
    const jpeg = await sharp(rgb, { raw: { width: w, height: h, channels: 3 } })
      .jpeg({ quality: 70 })
      .toBuffer();
    return `data:image/jpeg;base64,${jpeg.toString('base64')}`;
  }

  close(): void {
    this.pool.close();
    if (this.scratch) rmSync(this.scratch, { recursive: true, force: true });
  }
}
