/**
 * Jest runs each test file in its own VM context, whose built-in constructors differ from
 * Node's. Native and library code checks `instanceof` against Node's own: ONNX Runtime
 * refuses tensors whose data is another realm's Float32Array, and the Google clients'
 * HTTP layer (gaxios) fails on another realm's URL, Headers or Response. Share the host
 * realm's binary and web types.
 */
import { TestEnvironment } from 'jest-environment-node';

export default class SharedTypedArraysEnvironment extends TestEnvironment {
  override async setup(): Promise<void> {
    await super.setup();
    const shared = [
      'ArrayBuffer',
      'SharedArrayBuffer',
      'DataView',
      'Buffer',
      'Uint8Array',
      'Uint8ClampedArray',
      'Int8Array',
      'Uint16Array',
      'Int16Array',
      'Uint32Array',
      'Int32Array',
      'Float32Array',
      'Float64Array',
      'BigInt64Array',
      'BigUint64Array',
      'URL',
      'URLSearchParams',
      'fetch',
      'Request',
      'Response',
      'Headers',
      'FormData',
      'Blob',
      'AbortController',
      'AbortSignal',
      'TextEncoder',
      'TextDecoder',
      'ReadableStream',
    ] as const;
    for (const name of shared) (this.global as Record<string, unknown>)[name] = (globalThis as Record<string, unknown>)[name];
  }
}
