/**
 * What the tests of the tutorial's kind of model share: ImageNet-shaped labels (background
 * first, 1001 lines) and noisy pictures of a few sizes in the three formats BigQuery decodes.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { encodeBmp } from '../../src/images/bmp';
import { seededRandom } from '../../src/models';

export const LABELS = ['background', ...Array.from({ length: 1000 }, (_, i) => `imagenet_${i}`)];

/** Noisy pictures of a few sizes (none of them 224x224, so every one is resized), in the three formats. */
export async function writeImages(dir: string): Promise<string[]> {
  const random = seededRandom(31);
  const names: string[] = [];
  const sizes: [number, number][] = [
    [300, 200],
    [160, 240],
    [97, 131],
  ];
  for (const [index, [width, height]] of sizes.entries()) {
    const rgb = Buffer.alloc(width * height * 3);
    const tint = [random(), random(), random()];
    for (let i = 0; i < rgb.length; i++) rgb[i] = Math.min(255, Math.floor(255 * (0.6 * tint[i % 3]! + 0.4 * random())));
    const raw = sharp(rgb, { raw: { width, height, channels: 3 } });
    await raw
      .clone()
      .png()
      .toFile(join(dir, `photo-${index}.png`));
    await raw
      .clone()
      .jpeg({ quality: 90 })
      .toFile(join(dir, `photo-${index}.jpg`));
    writeFileSync(join(dir, `photo-${index}.bmp`), encodeBmp({ width, height, pixels: rgb }));
    names.push(`photo-${index}.png`, `photo-${index}.jpg`, `photo-${index}.bmp`);
  }
  return names;
}
