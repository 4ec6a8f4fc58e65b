/**
 * Thumbnails for the report: small JPEGs as data URIs, made from the images themselves.
 * Decoding goes through the decoder pool (separate processes with a memory cap) and the
 * header's pixel limit, like inference: an image bomb or hostile bytes cost a placeholder,
 * never the command.
 */
import { open } from 'node:fs/promises';
import sharp from 'sharp';
import { objectPath } from '../backends/local/storage';
import { DecoderPool } from '../images/decoderPool';
import { readHeader } from '../images/header';
import { MAX_IMAGE_PIXELS } from '../images/limits';

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

export class Thumbnailer {
  private readonly pool = new DecoderPool({ processes: 2 });

  /** A data URI for a `file://` object, or undefined when it cannot be shown (the reason is in the report already). */
  async thumbnail(uri: string): Promise<string | undefined> {
    if (!uri.startsWith('file://')) return undefined;
    try {
      const path = objectPath(uri);
      const { width, height } = readHeader(await headOf(path));
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
    } catch {
      return undefined;
    }
  }

  close(): void {
    this.pool.close();
  }
}
