export { decodeImage, sniffFormat, MAX_IMAGE_BYTES, type ImageFormat } from './decode';
export { resizeImage, resizedSize, roundHalfToEven } from './resize';
export { decodeBmp, encodeBmp } from './bmp';
export { ImageDecodeError, ImageResizeError, type RgbImage } from './types';
