import sharp, { type OutputInfo } from 'sharp';
import { decodeBmp, type Rgb8 } from './bmp';
import { readHeader } from './header';
import { turboJpeg } from './jpeg';
import { DECODER_MEMORY_MB, MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS } from './limits';
import { ImageDecodeError, type RgbImage } from './types';

// One libvips thread per image: callers decode several images at once, each on one core,
// rather than each decode spreading over every core.
sharp.concurrency(1);

export { sniffFormat, type ImageFormat } from './header';

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
    throw new ImageDecodeError(`image is ${bytes.length} bytes; DECODE_IMAGE accepts at most ${MAX_IMAGE_BYTES} bytes (10 MB)`);
  }
  if (bytes.length === 0) throw new ImageDecodeError('empty object (0 bytes): nothing to decode');
  const { format, width, height } = readHeader(bytes);
  if (width * height > MAX_IMAGE_PIXELS) {
    throw new ImageDecodeError(
      `image is ${width}x${height} = ${width * height} pixels; objinfer decodes at most ${MAX_IMAGE_PIXELS} pixels (a small file that decodes this big is an image bomb)`,
    );
  }
  if (format === 'bmp') return decodeBmp(bytes);
  const jpeg = format === 'jpeg' ? turboJpeg() : undefined;
  if (jpeg) return jpeg.decode(bytes);
  let decoded: { data: Buffer; info: OutputInfo };
  try {
    decoded = await sharp(bytes, { failOn: 'error', limitInputPixels: MAX_IMAGE_PIXELS }).raw().toBuffer({ resolveWithObject: true });
  } catch (error) {
    const message = (error as Error).message.split('\n')[0]!;
    if (/Error creating thread|Resource temporarily unavailable/i.test(message)) {
      throw new ImageDecodeError(`the decoder could not start a thread (${message}); its memory cap (${DECODER_MEMORY_MB} MB) may be too low`);
    }
    if (/out of memory/i.test(message)) {
      throw new ImageDecodeError(
        `decoding this ${width}x${height} ${format.toUpperCase()} needs more memory than a decoder may use (${DECODER_MEMORY_MB} MB): ${message}`,
      );
    }
    throw new ImageDecodeError(`corrupt ${format.toUpperCase()} data: ${message}`);
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
