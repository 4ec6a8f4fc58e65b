/** A decoded image: HWC, RGB, float32 in [0, 1], row-major. */
export interface RgbImage {
  readonly height: number;
  readonly width: number;
  readonly data: Float32Array;
}

/** Thrown for bytes that are not a JPEG, PNG or BMP image BigQuery would accept. */
export class ImageDecodeError extends Error {
  override readonly name = 'ImageDecodeError';
}

/** Thrown for a resize request that cannot produce an image (e.g. a size of 0). */
export class ImageResizeError extends Error {
  override readonly name = 'ImageResizeError';
}
