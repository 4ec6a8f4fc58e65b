export { decodeImage, decodeRgb8, UNIT_FLOAT, type Rgb8Image } from './decode';
export { readHeader, sniffFormat, type ImageFormat, type ImageHeader } from './header';
export { ACCEPTED_CONTENT_TYPES, MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS } from './limits';
export { resizeImage, resizeRgb8, resizedSize, roundHalfToEven } from './resize';
export { decodeBmp, encodeBmp } from './bmp';
export { ImageDecodeError, ImageResizeError, type RgbImage } from './types';
