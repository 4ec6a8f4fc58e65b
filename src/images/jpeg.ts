/**
 * JPEG decoding as TensorFlow does it (tf.io.decode_image, the reference for BigQuery's
 * ML.DECODE_IMAGE; see test/fixtures/jpeg-oracle): libjpeg-turbo with the fast integer IDCT,
 * TensorFlow's default, and smooth chroma upsampling; no colour profile applied and no EXIF
 * rotation; a file that ends early is an error, other libjpeg warnings are not; CMYK by
 * TensorFlow's formula. sharp (libvips) decodes with the accurate IDCT and applies embedded
 * profiles, so on the oracle's files it differs from TensorFlow in 42-83 % of the bytes.
 *
 * libjpeg-turbo is called through its TurboJPEG 3 API with koffi, from the library that
 * @julusian/jpeg-turbo ships for Linux (its own binding hard-codes the fast IDCT and refuses
 * CMYK and any warning), or from the path in OBJINFER_TURBOJPEG (e.g. Homebrew's
 * libturbojpeg.dylib). Without one, decode.ts falls back to sharp.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import koffi from 'koffi';
import type { Rgb8 } from './bmp';
import { hasAdobeMarker } from './header';
import { DECODER_MEMORY_MB, MAX_PROGRESSIVE_SCANS } from './limits';
import { ImageDecodeError } from './types';

// TurboJPEG 3 constants (turbojpeg.h).
const TJINIT_DECOMPRESS = 1;
const TJPARAM = { STOPONWARNING: 0, JPEGWIDTH: 5, JPEGHEIGHT: 6, COLORSPACE: 8, FASTDCT: 10, SCANLIMIT: 13, LOSSLESS: 15 } as const;
const TJCS_CMYK = 3;
const TJCS_YCCK = 4;
const TJPF_RGB = 0;
const TJPF_CMYK = 11;
const TJERR_FATAL = 1;

interface TurboJpeg {
  decode(bytes: Uint8Array): Rgb8;
}

let loaded: TurboJpeg | null | undefined;

/** libjpeg-turbo's decoder, or undefined when no TurboJPEG 3 library can be loaded here. */
export function turboJpeg(): TurboJpeg | undefined {
  if (loaded === undefined) loaded = candidates().reduce<TurboJpeg | null>((found, path) => found ?? tryLoad(path), null);
  return loaded ?? undefined;
}

function candidates(): string[] {
  const explicit = process.env.OBJINFER_TURBOJPEG;
  if (explicit) return [explicit];
  let bundled: string[] = [];
  try {
    const root = dirname(require.resolve('@julusian/jpeg-turbo/package.json'));
    // The glibc build, then the musl one: the wrong one fails to load (its libc is missing).
    bundled = ['', '-musl']
      .map((libc) => join(root, 'prebuilds', `jpeg-turbo-${process.platform}-${process.arch}${libc}`, 'libturbojpeg.so.0'))
      .filter((path) => existsSync(path));
  } catch {
    // not installed: system libraries only
  }
  return [...bundled, 'libturbojpeg.so.0'];
}

function tryLoad(path: string): TurboJpeg | null {
  try {
    return bind(path);
  } catch {
    return null; // missing, or older than TurboJPEG 3
  }
}

function bind(path: string): TurboJpeg {
  const lib = koffi.load(path);
  const init = lib.func('void* tj3Init(int)');
  const set = lib.func('int tj3Set(void*, int, int)');
  const get = lib.func('int tj3Get(void*, int)');
  const readHeader = lib.func('int tj3DecompressHeader(void*, const uint8_t*, size_t)');
  const decompress = lib.func('int tj3Decompress8(void*, const uint8_t*, size_t, _Out_ uint8_t*, int, int)');
  const errorText = lib.func('const char* tj3GetErrorStr(void*)');
  const errorCode = lib.func('int tj3GetErrorCode(void*)');
  const destroy = lib.func('void tj3Destroy(void*)');

  // One handle at a time: decoders decode one image at a time. A handle that has failed is
  // replaced, as it can keep reporting its last error for the next image.
  const open = (): unknown => {
    const made: unknown = init(TJINIT_DECOMPRESS);
    if (!made) throw new Error('tj3Init failed');
    return made;
  };
  let handle = open();
  /** The handle's error, as a decode error; the handle is replaced. */
  const failure = (size: string, message = String(errorText(handle))) => {
    destroy(handle);
    handle = open();
    return /insufficient memory/i.test(message) ? outOfMemory(size, message) : new ImageDecodeError(`corrupt JPEG data: ${message}`);
  };

  return {
    decode(bytes) {
      if (readHeader(handle, bytes, bytes.length) !== 0) throw failure('');
      const width = get(handle, TJPARAM.JPEGWIDTH);
      const height = get(handle, TJPARAM.JPEGHEIGHT);
      const size = `${width}x${height} `;
      if (get(handle, TJPARAM.LOSSLESS) === 1) throw failure(size, 'lossless JPEG (SOF3) is not supported');
      // TensorFlow's default; set per image, as reading a header may reset parameters.
      set(handle, TJPARAM.FASTDCT, 1);
      set(handle, TJPARAM.STOPONWARNING, 0);
      set(handle, TJPARAM.SCANLIMIT, MAX_PROGRESSIVE_SCANS);
      const cmyk = [TJCS_CMYK, TJCS_YCCK].includes(get(handle, TJPARAM.COLORSPACE));
      let out: Buffer;
      let rgb: Uint8Array;
      try {
        rgb = Buffer.allocUnsafe(width * height * 3);
        out = cmyk ? Buffer.allocUnsafe(width * height * 4) : (rgb as Buffer);
      } catch (error) {
        throw failure(size, `insufficient memory (${(error as Error).message})`);
      }
      if (decompress(handle, bytes, bytes.length, out, 0, cmyk ? TJPF_CMYK : TJPF_RGB) !== 0) {
        const fatal = errorCode(handle) === TJERR_FATAL;
        const error = failure(size);
        // TensorFlow refuses a file that ends early; libjpeg only warns and fills in the rest.
        if (fatal || /premature end/i.test(error.message)) throw error;
      }
      if (cmyk) cmykToRgb(out, hasAdobeMarker(bytes), rgb);
      return { height, width, pixels: rgb };
    },
  };
}

/** Worded like decode.ts's libvips case, and ending the decoder process (see EXHAUSTED there). */
function outOfMemory(size: string, message: string): ImageDecodeError {
  return new ImageDecodeError(`decoding this ${size}JPEG needs more memory than a decoder may use (${DECODER_MEMORY_MB} MB): out of memory (${message})`);
}

/**
 * TensorFlow's CMYK to RGB: Adobe's JPEGs store inverted samples, so R = C x K / 255 there
 * and (255 - C) x (255 - K) / 255 elsewhere, rounded down; no colour profile.
 */
function cmykToRgb(cmyk: Uint8Array, inverted: boolean, rgb: Uint8Array): void {
  const count = cmyk.length / 4;
  for (let i = 0; i < count; i++) {
    const k = inverted ? cmyk[i * 4 + 3]! : 255 - cmyk[i * 4 + 3]!;
    for (let c = 0; c < 3; c++) {
      const value = inverted ? cmyk[i * 4 + c]! : 255 - cmyk[i * 4 + c]!;
      rgb[i * 3 + c] = Math.floor((value * k) / 255);
    }
  }
}
