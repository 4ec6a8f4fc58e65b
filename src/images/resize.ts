import { UNIT_FLOAT, type Rgb8Image } from './decode';
import { ImageResizeError, type RgbImage } from './types';
import { resizeBytesWasm, WASM_MAX_SOURCE_BYTES } from './wasm/kernel';

const f32 = Math.fround;

/** Rounds half to even, as tf.round does (2.5 -> 2, 3.5 -> 4). */
export function roundHalfToEven(value: number): number {
  const floor = Math.floor(value);
  const diff = value - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/**
 * The output size of ML.RESIZE_IMAGE. With preserveAspectRatio the image is scaled by
 * min(h / H, w / W) (in float32, like TensorFlow) and each side rounded half to even:
 * the largest image inside h x w, without padding or cropping.
 */
export function resizedSize(
  image: { height: number; width: number },
  height: number,
  width: number,
  preserveAspectRatio: boolean,
): { height: number; width: number } {
  if (!Number.isInteger(height) || !Number.isInteger(width) || height <= 0 || width <= 0) {
    throw new ImageResizeError(`target size must be positive integers, got ${height}x${width}`);
  }
  if (!preserveAspectRatio) return { height, width };
  const scale = Math.min(f32(height / image.height), f32(width / image.width));
  const size = {
    height: roundHalfToEven(f32(image.height * scale)),
    width: roundHalfToEven(f32(image.width * scale)),
  };
  if (size.height === 0 || size.width === 0) {
    throw new ImageResizeError(
      `resizing ${image.height}x${image.width} into ${height}x${width} keeping the aspect ratio gives ` +
        `${size.height}x${size.width}; a side of 0 is not an image`,
    );
  }
  return size;
}

/** Source sample positions for one axis: half-pixel centres, clamped at the edges. */
function axisWeights(inSize: number, outSize: number) {
  const scale = f32(inSize / outSize);
  const lower = new Int32Array(outSize);
  const upper = new Int32Array(outSize);
  const lerp = new Float32Array(outSize);
  for (let i = 0; i < outSize; i++) {
    const position = f32(f32(f32(i + 0.5) * scale) - 0.5);
    const floor = Math.floor(position);
    lower[i] = Math.max(floor, 0);
    upper[i] = Math.min(Math.ceil(position), inSize - 1);
    lerp[i] = f32(position - floor);
  }
  return { lower, upper, lerp };
}

/**
 * ML.RESIZE_IMAGE: bilinear interpolation with half-pixel centres and no antialiasing,
 * computed in float32 like tf.image.resize(..., 'bilinear'). Library resizers that
 * antialias when shrinking (sharp, libvips) give different numbers, hence this.
 */
export function resizeImage(image: RgbImage, height: number, width: number, preserveAspectRatio: boolean): RgbImage {
  return resizeFrom(image, image.data, height, width, preserveAspectRatio);
}

/**
 * DECODE_IMAGE then RESIZE_IMAGE from 8-bit pixels, reading each sample as `pixel / 255`
 * through a table: the same numbers as resizeImage(decodeImage(...)), without building
 * the full-resolution float image (most of the cost for photos). With `into`, the pixels are
 * written there when they fit.
 */
export function resizeRgb8(image: Rgb8Image, height: number, width: number, preserveAspectRatio: boolean, into?: Float32Array): RgbImage {
  return resizeFrom(image, image.pixels, height, width, preserveAspectRatio, UNIT_FLOAT, into);
}

function resizeFrom(
  image: { height: number; width: number },
  src: Float32Array | Uint8Array,
  height: number,
  width: number,
  preserveAspectRatio: boolean,
  table?: Float32Array,
  into?: Float32Array,
): RgbImage {
  const size = resizedSize(image, height, width, preserveAspectRatio);
  const ys = axisWeights(image.height, size.height);
  const xs = axisWeights(image.width, size.width);
  const length = size.height * size.width * 3;
  // `into` lets a caller write straight into its batch tensor (no per-image array, no copy).
  const out = into && into.length >= length ? into.subarray(0, length) : new Float32Array(length);
  // Two loops, one per source type, so that each stays monomorphic (a shared accessor
  // closure made resizing several times slower).
  if (table && src.length <= WASM_MAX_SOURCE_BYTES && !resizeInJs) resizeBytesWasm(src as Uint8Array, table, image.width, ys, xs, size.width, out);
  else if (table) resizeBytes(src as Uint8Array, table, image.width, ys, xs, size.width, out);
  else resizeFloats(src as Float32Array, image.width, ys, xs, size.width, out);
  return { height: size.height, width: size.width, data: out };
}

type Axis = ReturnType<typeof axisWeights>;

/** For tests and bench/: the JS loop even where the WebAssembly kernel would run (they must agree bit for bit). */
let resizeInJs = false;
export function useJsResize(on: boolean): void {
  resizeInJs = on;
}

/** One output value from four neighbours, in float32 steps like TensorFlow's kernel. */
function bilinear(tl: number, tr: number, bl: number, br: number, xl: number, yl: number): number {
  const upperRow = f32(tl + f32(f32(tr - tl) * xl));
  const lowerRow = f32(bl + f32(f32(br - bl) * xl));
  return f32(upperRow + f32(f32(lowerRow - upperRow) * yl));
}

function resizeFloats(src: Float32Array, inWidth: number, ys: Axis, xs: Axis, outWidth: number, out: Float32Array): void {
  let o = 0;
  for (let y = 0; y < ys.lower.length; y++) {
    const top = ys.lower[y]! * inWidth * 3;
    const bottom = ys.upper[y]! * inWidth * 3;
    const yl = ys.lerp[y]!;
    for (let x = 0; x < outWidth; x++) {
      const left = xs.lower[x]! * 3;
      const right = xs.upper[x]! * 3;
      const xl = xs.lerp[x]!;
      for (let c = 0; c < 3; c++) {
        out[o++] = bilinear(src[top + left + c]!, src[top + right + c]!, src[bottom + left + c]!, src[bottom + right + c]!, xl, yl);
      }
    }
  }
}

function resizeBytes(src: Uint8Array, table: Float32Array, inWidth: number, ys: Axis, xs: Axis, outWidth: number, out: Float32Array): void {
  let o = 0;
  for (let y = 0; y < ys.lower.length; y++) {
    const top = ys.lower[y]! * inWidth * 3;
    const bottom = ys.upper[y]! * inWidth * 3;
    const yl = ys.lerp[y]!;
    for (let x = 0; x < outWidth; x++) {
      const left = xs.lower[x]! * 3;
      const right = xs.upper[x]! * 3;
      const xl = xs.lerp[x]!;
      for (let c = 0; c < 3; c++) {
        out[o++] = bilinear(
          table[src[top + left + c]!]!,
          table[src[top + right + c]!]!,
          table[src[bottom + left + c]!]!,
          table[src[bottom + right + c]!]!,
          xl,
          yl,
        );
      }
    }
  }
}
