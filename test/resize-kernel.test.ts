/**
 * The WebAssembly resize kernel (src/images/wasm) against the JS loop it replaces: the same
 * float32 numbers, bit for bit, over seeded random images of many shapes (shrinking,
 * enlarging, one-pixel and one-row images, SIMD tails); and the shipped bytes are what
 * resize.wat assembles to.
 */
import { readFileSync } from 'node:fs';
import { resizeRgb8 } from '../src/images';
import { useJsResize } from '../src/images/resize';
import { assembleResize, MODULE_FILE, moduleSource } from '../src/images/wasm/assemble';
import { WASM_MAX_SOURCE_BYTES } from '../src/images/wasm/kernel';

/** A small seeded generator (mulberry32), so a failure can be replayed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function both(image: { height: number; width: number; pixels: Uint8Array }, height: number, width: number, keepAspect = false) {
  useJsResize(true);
  try {
    const js = resizeRgb8(image, height, width, keepAspect).data;
    useJsResize(false);
    return { js, wasm: resizeRgb8(image, height, width, keepAspect).data };
  } finally {
    useJsResize(false);
  }
}

/** Indexes where the two differ (Object.is: -0 and NaN count). */
function differences(a: Float32Array, b: Float32Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < Math.max(a.length, b.length); i++) if (!Object.is(a[i], b[i])) out.push(i);
  return out;
}

test('the kernel and the JS loop give the same float32 values, bit for bit', () => {
  const next = random(Number(process.env.OBJINFER_SEED ?? 20261124));
  const shapes: [number, number, number, number][] = [
    [480, 640, 224, 224],
    [1, 1, 224, 224],
    [3000, 1, 224, 224],
    [1, 3000, 7, 5],
    [224, 224, 224, 224],
    [7, 9, 1, 1],
    [5, 3, 299, 301],
  ];
  for (let i = 0; i < 25; i++)
    shapes.push([1 + Math.floor(next() * 700), 1 + Math.floor(next() * 700), 1 + Math.floor(next() * 300), 1 + Math.floor(next() * 300)]);
  for (const [inH, inW, outH, outW] of shapes) {
    const image = { height: inH, width: inW, pixels: Uint8Array.from({ length: inH * inW * 3 }, () => Math.floor(next() * 256)) };
    const { js, wasm } = both(image, outH, outW);
    expect({ shape: [inH, inW, outH, outW], differences: differences(js, wasm).slice(0, 5) }).toEqual({ shape: [inH, inW, outH, outW], differences: [] });
  }
});

test('the kernel reads every byte value p as p / 255 in float32, as the JS loop does', () => {
  // Resized to its own size every weight is 0, so each output is a sample exactly as read.
  const pixels = Uint8Array.from({ length: 256 * 3 }, (_, i) => i % 256);
  const { js, wasm } = both({ height: 1, width: 256, pixels }, 1, 256);
  const expected = Array.from(pixels, (p) => Math.fround(p / 255));
  expect(Array.from(wasm)).toEqual(expected);
  expect(Array.from(js)).toEqual(expected);
});

test('an image over the kernel limit is resized by the JS loop (a decoder does not hold it twice)', () => {
  const side = Math.ceil(Math.sqrt(WASM_MAX_SOURCE_BYTES / 3)) + 1;
  const image = { height: side, width: side, pixels: new Uint8Array(side * side * 3).fill(255) };
  const { js, wasm } = both(image, 2, 2);
  expect(differences(js, wasm)).toEqual([]);
  expect(Array.from(wasm)).toEqual(new Array(12).fill(1));
});

test('resizeModule.ts holds what resize.wat assembles to (run `npm run wasm` after editing the .wat)', async () => {
  expect(readFileSync(MODULE_FILE, 'utf8')).toBe(moduleSource(await assembleResize()));
});
