/**
 * Image dimensions read from the header alone, so that an image bomb (a small file that
 * decodes to billions of pixels) is refused before any decoder touches it.
 */
import { ImageDecodeError } from './types';

export type ImageFormat = 'jpeg' | 'png' | 'bmp';

/** Identifies the format by its magic bytes; the file name and content type are not trusted. */
export function sniffFormat(bytes: Uint8Array): ImageFormat | undefined {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  const png = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (bytes.length >= 8 && png.every((b, i) => bytes[i] === b)) return 'png';
  if (bytes.length >= 2 && bytes[0] === 0x42 && bytes[1] === 0x4d) return 'bmp';
  return undefined;
}

export interface ImageHeader {
  format: ImageFormat;
  width: number;
  height: number;
}

/** Width and height from a JPEG, PNG or BMP header; a header that cannot be read is a decode error. */
export function readHeader(bytes: Uint8Array): ImageHeader {
  const format = sniffFormat(bytes);
  if (!format) throw new ImageDecodeError('unsupported image format: only JPEG, PNG and BMP can be decoded');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = format === 'png' ? pngSize(bytes, view) : format === 'bmp' ? bmpSize(bytes, view) : jpegSize(bytes, view);
  if (!size || size.width <= 0 || size.height <= 0) throw new ImageDecodeError(`corrupt ${format.toUpperCase()} data: no readable image size in the header`);
  return { format, ...size };
}

function pngSize(bytes: Uint8Array, view: DataView): { width: number; height: number } | undefined {
  const ihdr = String.fromCharCode(...bytes.subarray(12, 16));
  if (bytes.length < 24 || ihdr !== 'IHDR') return undefined;
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

function bmpSize(bytes: Uint8Array, view: DataView): { width: number; height: number } | undefined {
  if (bytes.length < 26) return undefined;
  return { width: view.getInt32(18, true), height: Math.abs(view.getInt32(22, true)) };
}

/** The JPEG marker segments before the first scan: marker byte, offset of its 0xFF, and length field. */
function* jpegSegments(bytes: Uint8Array, view: DataView): Generator<{ marker: number; at: number; length: number }> {
  let at = 2;
  while (at + 4 <= bytes.length) {
    if (bytes[at] !== 0xff) return;
    const marker = bytes[at + 1]!;
    if (marker === 0xff) {
      at++; // fill byte
      continue;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      at += 2; // standalone markers have no length
      continue;
    }
    if (marker === 0xd9 || marker === 0xda) return; // end of image, or scan data
    const length = view.getUint16(at + 2);
    yield { marker, at, length };
    if (length < 2) return;
    at += 2 + length;
  }
}

/** The size in the first start-of-frame. */
function jpegSize(bytes: Uint8Array, view: DataView): { width: number; height: number } | undefined {
  for (const { marker, at } of jpegSegments(bytes, view)) {
    const isFrame = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (!isFrame) continue;
    if (at + 9 > bytes.length) return undefined;
    return { height: view.getUint16(at + 5), width: view.getUint16(at + 7) };
  }
  return undefined;
}

/**
 * Whether a JPEG has Adobe's APP14 segment, as libjpeg decides it (12 or more bytes that start
 * with "Adobe"): Adobe's CMYK JPEGs store their samples inverted.
 */
export function hasAdobeMarker(bytes: Uint8Array): boolean {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (const { marker, at, length } of jpegSegments(bytes, view)) {
    if (marker === 0xee && length >= 14 && at + 9 <= bytes.length && String.fromCharCode(...bytes.subarray(at + 4, at + 9)) === 'Adobe') return true;
  }
  return false;
}
