/**
 * DECODE_IMAGE / RESIZE_IMAGE semantics (DESIGN §5). Expected values are worked out by
 * hand below, or come from TensorFlow (the oracle fixtures), never from this code.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import {
  decodeImage,
  decodeRgb8,
  encodeBmp,
  ImageDecodeError,
  resizeRgb8,
  ImageResizeError,
  MAX_IMAGE_BYTES,
  resizedSize,
  resizeImage,
  roundHalfToEven,
  type RgbImage,
} from '../src/images';

const raw = (pixels: number[], width: number, height: number, channels: 1 | 2 | 3 | 4) => sharp(Buffer.from(pixels), { raw: { width, height, channels } });

/** A one-channel-per-value image whose three channels are equal, for readable resize cases. */
function gray(height: number, width: number, values: number[]): RgbImage {
  const data = new Float32Array(values.length * 3);
  values.forEach((v, i) => data.fill(v, i * 3, i * 3 + 3));
  return { height, width, data };
}

function firstChannel(image: RgbImage): number[] {
  return Array.from({ length: image.height * image.width }, (_, i) => image.data[i * 3]!);
}

describe('DECODE_IMAGE', () => {
  test('PNG pixels become RGB floats of pixel / 255 in HWC order', async () => {
    const png = await raw([255, 0, 0, 0, 128, 255], 2, 1, 3).png().toBuffer();
    const image = await decodeImage(png);
    expect([image.height, image.width]).toEqual([1, 2]);
    expect(Array.from(image.data)).toEqual([1, 0, 0, 0, 128 / 255, 1].map(Math.fround));
  });

  test('alpha is dropped without compositing', async () => {
    const png = await raw([200, 100, 50, 0, 10, 20, 30, 128], 2, 1, 4).png().toBuffer();
    const image = await decodeImage(png);
    expect(Array.from(image.data)).toEqual([200, 100, 50, 10, 20, 30].map((v) => Math.fround(v / 255)));
  });

  test('grayscale becomes three equal channels', async () => {
    const png = await raw([51, 204], 1, 2, 1).png().toBuffer();
    const image = await decodeImage(png);
    expect([image.height, image.width]).toEqual([2, 1]);
    expect(Array.from(image.data)).toEqual([0.2, 0.2, 0.2, 0.8, 0.8, 0.8].map(Math.fround));
  });

  test('BMP, which sharp cannot read, decodes to the same values as its pixels', async () => {
    const pixels = new Uint8Array([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 51, 102, 153]);
    const bmp = encodeBmp({ height: 2, width: 3, pixels });
    const image = await decodeImage(bmp);
    expect([image.height, image.width]).toEqual([2, 3]);
    expect(Array.from(image.data)).toEqual(Array.from(pixels, (v) => Math.fround(v / 255)));
  });

  test('JPEG decodes to values close to its source pixels', async () => {
    const jpeg = await raw(
      new Array(8 * 8 * 3).fill(0).map((_, i) => (i % 3 === 0 ? 200 : 40)),
      8,
      8,
      3,
    )
      .jpeg({ quality: 100 })
      .toBuffer();
    const image = await decodeImage(jpeg);
    expect(image.data[0]).toBeCloseTo(200 / 255, 1);
    expect(image.data[1]).toBeCloseTo(40 / 255, 1);
  });

  test.each([
    ['GIF', () => raw([1, 2, 3], 1, 1, 3).gif().toBuffer()],
    ['WEBP', () => raw([1, 2, 3], 1, 1, 3).webp().toBuffer()],
    ['TIFF', () => raw([1, 2, 3], 1, 1, 3).tiff().toBuffer()],
  ])('%s is refused, as BigQuery refuses it', async (_format, make) => {
    await expect(decodeImage(await make())).rejects.toThrow(/only JPEG, PNG and BMP/);
  });

  test('corrupt bytes after a JPEG header give a decode error', async () => {
    const bytes = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.from('garbage')]);
    await expect(decodeImage(bytes)).rejects.toBeInstanceOf(ImageDecodeError);
  });

  test('input over 10 MB is refused before decoding', async () => {
    const big = Buffer.alloc(MAX_IMAGE_BYTES + 1);
    big.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    await expect(decodeImage(big)).rejects.toThrow(/image is 10000001 bytes; DECODE_IMAGE accepts at most 10000000 bytes/);
  });

  test('exactly 10 MB is not refused for its size', async () => {
    const atLimit = Buffer.alloc(MAX_IMAGE_BYTES);
    atLimit.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    await expect(decodeImage(atLimit)).rejects.toThrow(/corrupt PNG/);
  });
});

describe('RESIZE_IMAGE', () => {
  test('upscaling uses half-pixel centres and clamps at the edges', () => {
    // 1x2 -> 1x4: scale 0.5; source x = (i + 0.5) * 0.5 - 0.5 = -0.25, 0.25, 0.75, 1.25.
    // -0.25 clamps to pixel 0; 1.25 clamps to pixel 1; the middle two interpolate.
    const out = resizeImage(gray(1, 2, [0, 1]), 1, 4, false);
    expect(firstChannel(out)).toEqual([0, 0.25, 0.75, 1]);
  });

  test('downscaling does not antialias: 3 -> 1 samples the centre pixel only', () => {
    // source x = (0 + 0.5) * 3 - 0.5 = 1: exactly pixel 1. An antialiasing resizer would average to 1/3.
    const out = resizeImage(gray(1, 3, [0, 1, 0]), 1, 1, false);
    expect(firstChannel(out)).toEqual([1]);
  });

  test('bilinear in both directions', () => {
    // 2x2 [[0, 1], [1, 0]] -> 1x1: source (0.5, 0.5), the mean of all four = 0.5.
    expect(firstChannel(resizeImage(gray(2, 2, [0, 1, 1, 0]), 1, 1, false))).toEqual([0.5]);
    // 2x2 [[0, 0.5], [1, 1]] -> 3x3 centre: source (0.5, 0.5) -> (0 + 0.5 + 1 + 1) / 4 = 0.625.
    const out = resizeImage(gray(2, 2, [0, 0.5, 1, 1]), 3, 3, false);
    expect(firstChannel(out)[4]).toBeCloseTo(0.625, 6);
  });

  test('preserve aspect ratio: largest image inside the box, no padding', () => {
    // 2x3 into 48x32: scale = min(48/2, 32/3) = 10.667 -> 21.33 x 32 -> 21 x 32.
    expect(resizedSize({ height: 2, width: 3 }, 48, 32, true)).toEqual({ height: 21, width: 32 });
    // 80x120 into 37x100: scale = min(37/80, 100/120) = 0.4625 -> 37 x 55.5 -> 37 x 56 (half to even).
    expect(resizedSize({ height: 80, width: 120 }, 37, 100, true)).toEqual({ height: 37, width: 56 });
    expect(resizedSize({ height: 80, width: 120 }, 37, 100, false)).toEqual({ height: 37, width: 100 });
  });

  test('sizes round half to even', () => {
    expect([0.5, 1.5, 2.5, 3.5, 2.4999, 2.5001].map(roundHalfToEven)).toEqual([0, 2, 2, 4, 2, 3]);
    // 5x10 into 10x5: scale = min(2, 0.5) = 0.5 -> 2.5 x 5 -> 2 x 5; 7x10 -> 3.5 x 5 -> 4 x 5.
    expect(resizedSize({ height: 5, width: 10 }, 10, 5, true)).toEqual({ height: 2, width: 5 });
    expect(resizedSize({ height: 7, width: 10 }, 10, 5, true)).toEqual({ height: 4, width: 5 });
  });

  test('a size of 0 is an error', () => {
    expect(() => resizedSize({ height: 1, width: 100 }, 10, 10, true)).toThrow(ImageResizeError);
    expect(() => resizeImage(gray(1, 1, [0]), 0, 4, false)).toThrow(/positive integers/);
  });
});

describe('TensorFlow oracle (shared/fixtures/image-oracle)', () => {
  const dir = join(__dirname, 'fixtures', 'image-oracle');
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as {
    cases: {
      image: string;
      decode: string;
      decode_shape: number[];
      height: number;
      width: number;
      preserve_aspect_ratio: boolean;
      expected: string;
      expected_shape: number[];
    }[];
  };
  const floats = (file: string) => {
    const bytes = readFileSync(join(dir, file));
    return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  };
  const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

  test('has the 25 cases', () => expect(manifest.cases).toHaveLength(25));

  test.each(manifest.cases.map((c) => [c.expected, c] as const))('%s', async (_name, c) => {
    const decoded = await decodeImage(readFileSync(join(dir, c.image)));
    expect([decoded.height, decoded.width, 3]).toEqual(c.decode_shape);
    expect(maxDiff(decoded.data, floats(c.decode))).toBeLessThanOrEqual(1e-7);
    const resized = resizeImage(decoded, c.height, c.width, c.preserve_aspect_ratio);
    expect([resized.height, resized.width, 3]).toEqual(c.expected_shape);
    expect(maxDiff(resized.data, floats(c.expected))).toBeLessThanOrEqual(1e-6);
    // The pipeline's path (resizing straight from 8-bit pixels) gives the very same floats.
    const fromBytes = resizeRgb8(await decodeRgb8(readFileSync(join(dir, c.image))), c.height, c.width, c.preserve_aspect_ratio);
    expect(fromBytes.data).toEqual(resized.data);
  });
});

describe('TensorFlow oracle for JPEG (fixtures/jpeg-oracle, made by its generate.py)', () => {
  const dir = join(__dirname, 'fixtures', 'jpeg-oracle');
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as {
    cases: { image: string; error?: string; shape?: number[]; decode?: string; resize?: [number, number]; expected?: string }[];
  };
  const floats = (file: string) => {
    const bytes = readFileSync(join(dir, file));
    return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  };

  test('covers subsampling, progressive, gray, CMYK with and without Adobe inversion, a profile, EXIF rotation and corruption', () => {
    expect(manifest.cases.map((c) => c.image.replace(/_.*/, '')).sort()).toEqual(
      [
        'bit-flipped',
        'cmyk-adobe',
        'cmyk-plain',
        'exif-rotated',
        'gray',
        'icc-display-p3',
        'progressive',
        'truncated',
        'ycc420-odd',
        'ycc420-q90',
        'ycc422-q95',
        'ycc444-q98',
      ].sort(),
    );
  });

  test.each(manifest.cases.filter((c) => !c.error).map((c) => [c.image, c] as const))('%s decodes to the very bytes TensorFlow does', async (_name, c) => {
    const bytes = readFileSync(join(dir, c.image));
    const decoded = await decodeRgb8(bytes);
    expect([decoded.height, decoded.width, 3]).toEqual(c.shape);
    const expected = readFileSync(join(dir, c.decode!));
    const differing = decoded.pixels.reduce((n, v, i) => n + (v === expected[i] ? 0 : 1), 0);
    expect(differing).toBe(0);
    const [height, width] = c.resize!;
    const resized = resizeRgb8(decoded, height, width, false);
    const want = floats(c.expected!);
    expect(resized.data.reduce((m, v, i) => Math.max(m, Math.abs(v - want[i]!)), 0)).toBeLessThanOrEqual(1e-6);
  });

  test.each(manifest.cases.filter((c) => c.error).map((c) => [c.image, c] as const))('%s is refused, as TensorFlow refuses it', async (_name, c) => {
    await expect(decodeRgb8(readFileSync(join(dir, c.image)))).rejects.toThrow(/^corrupt JPEG data: premature end of JPEG file$/i);
  });

  test('a refused JPEG leaves the decoder sound: the next image decodes exactly', async () => {
    const good = manifest.cases.find((c) => c.image.startsWith('ycc420-q90'))!;
    for (const bad of [Buffer.from([0xff, 0xd8, 0xff, 0xc4, 0x00, 0x03, 0x00]), readFileSync(join(dir, 'truncated_48x64.jpg'))]) {
      await expect(decodeRgb8(bad)).rejects.toThrow(ImageDecodeError);
      expect(Buffer.from((await decodeRgb8(readFileSync(join(dir, good.image)))).pixels).equals(readFileSync(join(dir, good.decode!)))).toBe(true);
    }
  });
});

test('without a libjpeg-turbo library (OBJINFER_TURBOJPEG names none), JPEGs still decode, through sharp', async () => {
  const saved = process.env.OBJINFER_TURBOJPEG;
  process.env.OBJINFER_TURBOJPEG = join(__dirname, 'no-such-libturbojpeg.so');
  try {
    let isolated!: { jpeg: typeof import('../src/images/jpeg'); decode: typeof import('../src/images/decode') };
    await jest.isolateModulesAsync(async () => {
      isolated = { jpeg: await import('../src/images/jpeg'), decode: await import('../src/images/decode') };
    });
    expect(isolated.jpeg.turboJpeg()).toBeUndefined();
    const dir = join(__dirname, 'fixtures', 'jpeg-oracle');
    const decoded = await isolated.decode.decodeRgb8(readFileSync(join(dir, 'ycc420-q90_48x64.jpg')));
    const tensorflow = readFileSync(join(dir, 'ycc420-q90_48x64.jpg.rgb'));
    const deviation = decoded.pixels.reduce((m, v, i) => Math.max(m, Math.abs(v - tensorflow[i]!)), 0);
    expect(deviation).toBeGreaterThan(0); // sharp's accurate IDCT is not TensorFlow's
    expect(deviation).toBeLessThanOrEqual(8);
  } finally {
    if (saved === undefined) delete process.env.OBJINFER_TURBOJPEG;
    else process.env.OBJINFER_TURBOJPEG = saved;
  }
});

test('a progressive JPEG of more scans than any encoder writes is refused at once, naming the limit; one within it decodes', async () => {
  const jpeg = await sharp({
    create: { width: 64, height: 48, channels: 3, background: { r: 10, g: 100, b: 200 }, noise: { type: 'gaussian', mean: 128, sigma: 40 } },
  })
    .jpeg({ progressive: true })
    .toBuffer();
  // Each scan revisits the whole image, so a scan repeated thousands of times makes a small file decode for minutes.
  const lastScan = jpeg.lastIndexOf(Buffer.from([0xff, 0xda]));
  const end = jpeg.length - 2; // the end-of-image marker
  const withScans = (extra: number) => Buffer.concat([jpeg.subarray(0, end), ...Array<Buffer>(extra).fill(jpeg.subarray(lastScan, end)), jpeg.subarray(end)]);
  expect((await decodeRgb8(withScans(400))).width).toBe(64);
  await expect(decodeRgb8(withScans(600))).rejects.toThrow(/^corrupt JPEG data: Progressive JPEG image has more than 500 scans$/);
});
