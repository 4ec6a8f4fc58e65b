import { ImageDecodeError } from './types';

/** 8-bit RGB pixels, HWC with 3 channels. */
export interface Rgb8 {
  height: number;
  width: number;
  pixels: Uint8Array;
}

const BI_RGB = 0;
const BI_BITFIELDS = 3;

/**
 * Decodes uncompressed Windows BMPs (8-bit paletted, 24-bit, 32-bit).
 * sharp/libvips cannot read BMP, and BigQuery's DECODE_IMAGE accepts it, so we do it here.
 * Alpha, where present, is dropped like the other formats.
 */
export function decodeBmp(bytes: Uint8Array): Rgb8 {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (why: string): never => {
    throw new ImageDecodeError(`invalid BMP: ${why}`);
  };
  if (bytes.length < 54 || bytes[0] !== 0x42 || bytes[1] !== 0x4d) fail('missing BM header');
  const pixelOffset = view.getUint32(10, true);
  const headerSize = view.getUint32(14, true);
  if (headerSize < 40) fail(`unsupported header size ${headerSize}`);
  const width = view.getInt32(18, true);
  const rawHeight = view.getInt32(22, true);
  const bitsPerPixel = view.getUint16(28, true);
  const compression = view.getUint32(30, true);
  if (width <= 0 || rawHeight === 0) fail(`bad dimensions ${width}x${rawHeight}`);
  const height = Math.abs(rawHeight);
  const bottomUp = rawHeight > 0;
  if (![8, 24, 32].includes(bitsPerPixel)) fail(`unsupported bit depth ${bitsPerPixel}`);
  if (!(compression === BI_RGB || (compression === BI_BITFIELDS && bitsPerPixel === 32))) {
    fail(`unsupported compression ${compression}`);
  }
  const rowStride = Math.ceil((width * bitsPerPixel) / 32) * 4;
  if (pixelOffset + rowStride * height > bytes.length) fail('truncated pixel data');

  let palette: Uint8Array | undefined;
  if (bitsPerPixel === 8) {
    const colours = view.getUint32(46, true) || 256;
    const start = 14 + headerSize;
    if (start + colours * 4 > pixelOffset) fail('truncated palette');
    palette = bytes.subarray(start, start + colours * 4);
  }

  const pixels = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const row = pixelOffset + (bottomUp ? height - 1 - y : y) * rowStride;
    for (let x = 0; x < width; x++) {
      const out = (y * width + x) * 3;
      if (palette) {
        const index = bytes[row + x]!;
        if (index * 4 + 2 >= palette.length) fail(`palette index ${index} out of range`);
        pixels[out] = palette[index * 4 + 2]!;
        pixels[out + 1] = palette[index * 4 + 1]!;
        pixels[out + 2] = palette[index * 4]!;
      } else {
        const at = row + x * (bitsPerPixel / 8);
        pixels[out] = bytes[at + 2]!; // BMP stores BGR(A)
        pixels[out + 1] = bytes[at + 1]!;
        pixels[out + 2] = bytes[at]!;
      }
    }
  }
  return { height, width, pixels };
}

/** Encodes 8-bit RGB pixels as a 24-bit bottom-up BMP (used to make demo and test images). */
export function encodeBmp(image: Rgb8): Buffer {
  const { width, height, pixels } = image;
  const rowStride = Math.ceil((width * 24) / 32) * 4;
  const size = 54 + rowStride * height;
  const out = Buffer.alloc(size);
  out.write('BM', 0, 'latin1');
  out.writeUInt32LE(size, 2);
  out.writeUInt32LE(54, 10);
  out.writeUInt32LE(40, 14);
  out.writeInt32LE(width, 18);
  out.writeInt32LE(height, 22);
  out.writeUInt16LE(1, 26);
  out.writeUInt16LE(24, 28);
  out.writeUInt32LE(rowStride * height, 34);
  for (let y = 0; y < height; y++) {
    const row = 54 + (height - 1 - y) * rowStride;
    for (let x = 0; x < width; x++) {
      const src = (y * width + x) * 3;
      out[row + x * 3] = pixels[src + 2]!;
      out[row + x * 3 + 1] = pixels[src + 1]!;
      out[row + x * 3 + 2] = pixels[src]!;
    }
  }
  return out;
}
