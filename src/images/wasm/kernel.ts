/**
 * The resize kernel in WebAssembly (resize.wat): the same float32 steps as the JS loop in
 * resize.ts, with SIMD, several times faster. Sources over WASM_MAX_SOURCE_BYTES use the
 * JS loop instead, so a decoder never holds a huge image twice (its memory is capped).
 */
import { RESIZE_WASM } from './resizeModule';

export const WASM_MAX_SOURCE_BYTES = 48 * 1024 * 1024; // 16 megapixels of RGB

export interface AxisWeights {
  lower: Int32Array;
  upper: Int32Array;
  lerp: Float32Array;
}

// Node's WebAssembly global, typed here: TypeScript declares it only in the DOM library.
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: Record<string, unknown> };
};

const instance = new WebAssembly.Instance(new WebAssembly.Module(Buffer.from(RESIZE_WASM, 'base64')));
const memory = instance.exports.memory as { readonly buffer: ArrayBuffer; grow(pages: number): number };
const kernel = instance.exports.resize as (...addresses: number[]) => void;

/** Byte addresses for the kernel's arguments, each 16-byte aligned; the first (the table) at 0, where resize.wat reads it. */
function layout(sizes: number[]): { at: number[]; end: number } {
  const at: number[] = [];
  let end = 0;
  for (const size of sizes) {
    at.push(end);
    end += Math.ceil(size / 16) * 16;
  }
  return { at, end };
}

export function resizeBytesWasm(
  src: Uint8Array,
  table: Float32Array,
  inWidth: number,
  ys: AxisWeights,
  xs: AxisWeights,
  outWidth: number,
  out: Float32Array,
): void {
  const n = outWidth * 3;
  const outHeight = ys.lower.length;
  const { at, end } = layout([1024, n * 4, n * 4, n * 4, outHeight * 4, outHeight * 4, outHeight * 4, src.length, outHeight * n * 4]);
  const [tableAt, leftAt, rightAt, xLerpAt, topAt, bottomAt, yLerpAt, srcAt, outAt] = at as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (end > memory.buffer.byteLength) memory.grow(Math.ceil((end - memory.buffer.byteLength) / 65536));
  const buffer = memory.buffer;
  new Float32Array(buffer, tableAt, 256).set(table);
  const left = new Int32Array(buffer, leftAt, n);
  const right = new Int32Array(buffer, rightAt, n);
  const xLerp = new Float32Array(buffer, xLerpAt, n);
  for (let x = 0; x < outWidth; x++) {
    for (let c = 0; c < 3; c++) {
      left[x * 3 + c] = xs.lower[x]! * 3 + c;
      right[x * 3 + c] = xs.upper[x]! * 3 + c;
      xLerp[x * 3 + c] = xs.lerp[x]!;
    }
  }
  const rowBytes = inWidth * 3;
  const top = new Int32Array(buffer, topAt, outHeight);
  const bottom = new Int32Array(buffer, bottomAt, outHeight);
  for (let y = 0; y < outHeight; y++) {
    top[y] = ys.lower[y]! * rowBytes;
    bottom[y] = ys.upper[y]! * rowBytes;
  }
  new Float32Array(buffer, yLerpAt, outHeight).set(ys.lerp);
  new Uint8Array(buffer, srcAt, src.length).set(src);
  kernel(leftAt, rightAt, xLerpAt, n, topAt, bottomAt, yLerpAt, outHeight, srcAt, outAt);
  out.set(new Float32Array(buffer, outAt, outHeight * n));
}
