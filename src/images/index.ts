export { decodeImage, decodeRgb8, sniffFormat, MAX_IMAGE_BYTES, UNIT_FLOAT, type ImageFormat, type Rgb8Image } from './decode';
export { resizeImage, resizeRgb8, resizedSize, roundHalfToEven } from './resize';
export { decodeBmp, encodeBmp } from './bmp';
export { ImageDecodeError, ImageResizeError, type RgbImage } from './types';
