import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { encodeBmp } from '../images/bmp';
import { COLOR_LABELS, COLOR_PROTOTYPES, type ColorLabel } from '../models/colorClassifier';
import { seededRandom } from '../models/random';

export type DemoFormat = 'png' | 'jpg' | 'bmp';
const FORMATS: DemoFormat[] = ['png', 'jpg', 'bmp'];
const SIZES: [number, number][] = [
  [48, 64],
  [40, 40],
  [60, 100],
  [96, 72],
  [33, 57],
];

/**
 * Pixels whose mean colour is clearly nearest to `label`: the label's colour with
 * noise, and a small rectangle of another colour so the picture is not flat.
 */
export function colorPixels(label: ColorLabel, height: number, width: number, seed: number): Uint8Array {
  const random = seededRandom(seed);
  const base = COLOR_PROTOTYPES[label];
  const other = COLOR_PROTOTYPES[COLOR_LABELS[Math.floor(random() * COLOR_LABELS.length)]!];
  const box = { y: Math.floor(height * 0.2), x: Math.floor(width * 0.3), h: Math.ceil(height * 0.25), w: Math.ceil(width * 0.25) };
  const pixels = new Uint8Array(height * width * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const inBox = y >= box.y && y < box.y + box.h && x >= box.x && x < box.x + box.w;
      const colour = inBox ? other : base;
      for (let c = 0; c < 3; c++) {
        const noisy = colour[c]! * 215 + 20 + (random() - 0.5) * 40;
        pixels[(y * width + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(noisy)));
      }
    }
  }
  return pixels;
}

export async function encodeImage(pixels: Uint8Array, height: number, width: number, format: DemoFormat): Promise<Buffer> {
  if (format === 'bmp') return encodeBmp({ height, width, pixels });
  const image = sharp(Buffer.from(pixels), { raw: { width, height, channels: 3 } });
  return format === 'png' ? image.png().toBuffer() : image.jpeg({ quality: 90 }).toBuffer();
}

export interface GeneratedImage {
  file: string;
  expectedLabel: ColorLabel | null; // null: not an image
}

/** Writes one colour image named `<label>-<id>.<format>` and returns its path. */
export async function writeColorImage(dir: string, label: ColorLabel, id: number, format: DemoFormat = FORMATS[id % FORMATS.length]!): Promise<string> {
  const [height, width] = SIZES[id % SIZES.length]!;
  const file = join(dir, `${label}-${String(id).padStart(3, '0')}.${format}`);
  await writeIfChanged(file, await encodeImage(colorPixels(label, height, width, id * 7919 + label.length), height, width, format));
  return file;
}

/** Leaves identical files untouched, so their generation (mtime) stays and re-runs stay incremental. */
async function writeIfChanged(file: string, bytes: Buffer): Promise<void> {
  const existing = await readFile(file).catch(() => undefined);
  if (existing && existing.equals(bytes)) return;
  await writeFile(file, bytes);
}

/** Bytes that start like a JPEG but are not one: the pipeline must isolate it, not stop. */
export const CORRUPT_JPEG = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.from('this is not really a jpeg')]);

/**
 * The demo set: `perLabel` images of each colour in PNG, JPEG and BMP, and one corrupt
 * file. Deterministic: the same call writes the same bytes.
 */
export async function generateDemoImages(dir: string, perLabel = 3): Promise<GeneratedImage[]> {
  await mkdir(dir, { recursive: true });
  const images: GeneratedImage[] = [];
  let id = 0;
  for (const label of COLOR_LABELS) {
    for (let i = 0; i < perLabel; i++) {
      images.push({ file: await writeColorImage(dir, label, id++), expectedLabel: label });
    }
  }
  const corrupt = join(dir, 'broken.jpg');
  await writeIfChanged(corrupt, CORRUPT_JPEG);
  images.push({ file: corrupt, expectedLabel: null });
  return images;
}
