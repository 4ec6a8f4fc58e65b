/**
 * Assembles resize.wat into WebAssembly with wabt (a development dependency). The bytes
 * are kept in resizeModule.ts, so the worker needs no assembler: `npm run wasm` rewrites
 * that file, and a test fails when it no longer matches resize.wat.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const WAT_FILE = join(__dirname, 'resize.wat');
export const MODULE_FILE = join(__dirname, 'resizeModule.ts');

export async function assembleResize(): Promise<Uint8Array> {
  const wabt = await (await import('wabt')).default();
  const parsed = wabt.parseWat('resize.wat', readFileSync(WAT_FILE, 'utf8'), { simd: true });
  try {
    parsed.validate();
    return parsed.toBinary({}).buffer;
  } finally {
    parsed.destroy();
  }
}

export function moduleSource(bytes: Uint8Array): string {
  return [
    '// Generated from resize.wat by `npm run wasm` (src/images/wasm/assemble.ts); do not edit.',
    `export const RESIZE_WASM = '${Buffer.from(bytes).toString('base64')}';`,
    '',
  ].join('\n');
}

if (require.main === module) {
  void assembleResize().then((bytes) => {
    writeFileSync(MODULE_FILE, moduleSource(bytes));
    console.log(`${MODULE_FILE}: ${bytes.length} bytes of WebAssembly`);
  });
}
