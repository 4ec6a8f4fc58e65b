import sharp, { type OutputInfo } from 'sharp';
import { decodeBmp, type Rgb8 } from './bmp';
import { ImageDecodeError, type RgbImage } from './types';

// One libvips thread per image: callers decode several images at once, each on one core,
// rather than each decode spreading over every core.
sharp.concurrency(1);

/** BigQuery's ML.DECODE_IMAGE refuses inputs larger than 10 MB. */
export const MAX_IMAGE_BYTES = 10 * 1024 * 1024;

export type ImageFormat = 'jpeg' | 'png' | 'bmp';

/** Identifies the format by its magic bytes; the file name and content type are not trusted. */
export function sniffFormat(bytes: Uint8Array): ImageFormat | undefined {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  if (
    bytes.length >= 8 &&
    bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47 &&
    bytes[4] === 0x0d && bytes[5] === 0x0a && bytes[6] === 0x1a && bytes[7] === 0x0a
  ) return 'png';
  if (bytes.length >= 2 && bytes[0] === 0x42 && bytes[1] === 0x4d) return 'bmp';
  return undefined;
}

/** Decoded 8-bit RGB pixels (HWC, 3 channels): what DECODE_IMAGE's floats are made from. */
export type Rgb8Image = Rgb8;

/** `pixel / 255` in float32 for every byte value: the exact values DECODE_IMAGE yields. */
export const UNIT_FLOAT = Float32Array.from({ length: 256 }, (_, p) => p / 255);

/**
 * ML.DECODE_IMAGE: JPEG, PNG or BMP bytes to an HWC RGB float image of `pixel / 255`.
 * Alpha is dropped without compositing and grayscale is repeated into three channels.
 */
export async function decodeImage(bytes: Uint8Array): Promise<RgbImage> {
  const { height, width, pixels } = await decodeRgb8(bytes);
  const data = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) data[i] = UNIT_FLOAT[pixels[i]!]!;
  return { height, width, data };
}

/** DECODE_IMAGE without the float conversion, for callers that resize next (see resizeRgb8). */
export async function decodeRgb8(bytes: Uint8Array): Promise<Rgb8Image> {
  if (bytes.length > MAX_IMAGE_BYTES) {
    throw new ImageDecodeError(
      `image is ${bytes.length} bytes; DECODE_IMAGE accepts at most ${MAX_IMAGE_BYTES} bytes (10 MB)`,
    );
  }
  if (bytes.length === 0) throw new ImageDecodeError('empty object (0 bytes): nothing to decode');
  const format = sniffFormat(bytes);
  if (!format) throw new ImageDecodeError('unsupported image format: only JPEG, PNG and BMP can be decoded');
  if (format === 'bmp') return decodeBmp(bytes);
  let decoded: { data: Buffer; info: OutputInfo };
  try {
    decoded = await sharp(bytes, { failOn: 'error', limitInputPixels: false })
      .raw()
      .toBuffer({ resolveWithObject: true });
  } catch (error) {
    throw new ImageDecodeError(`corrupt ${format.toUpperCase()} data: ${(error as Error).message}`);
  }
  const { data, info } = decoded;
  return { height: info.height, width: info.width, pixels: toRgb(data, info.channels) };
}

/** Keeps the colour channels of 1 to 4 channel 8-bit pixels: alpha dropped, gray repeated. */
function toRgb(pixels: Uint8Array, channels: number): Uint8Array {
  if (channels === 3) return pixels;
  const count = pixels.length / channels;
  const out = new Uint8Array(count * 3);
  const grayscale = channels <= 2; // gray, or gray + alpha
  for (let i = 0; i < count; i++) {
    const at = i * channels;
    for (let c = 0; c < 3; c++) out[i * 3 + c] = pixels[grayscale ? at : at + c]!;
  }
  return out;
}
