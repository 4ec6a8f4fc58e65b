/**
 * Jest runs each test file in its own VM context, whose typed-array constructors differ
 * from Node's. ONNX Runtime checks `data instanceof Float32Array` against Node's own, so
 * tensors built inside tests would be refused. Share the host realm's binary types.
 */
import { TestEnvironment } from 'jest-environment-node';

export default class SharedTypedArraysEnvironment extends TestEnvironment {
  override async setup(): Promise<void> {
    await super.setup();
    const shared = [
      'ArrayBuffer', 'SharedArrayBuffer', 'DataView', 'Buffer', 'Uint8Array', 'Uint8ClampedArray', 'Int8Array',
      'Uint16Array', 'Int16Array', 'Uint32Array', 'Int32Array', 'Float32Array', 'Float64Array',
      'BigInt64Array', 'BigUint64Array',
    ] as const;
    for (const name of shared) (this.global as Record<string, unknown>)[name] = (globalThis as Record<string, unknown>)[name];
  }
}
