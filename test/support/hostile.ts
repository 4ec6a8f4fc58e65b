/** Hostile files the tests share. */

/**
 * A PNG whose header claims `width` x `height` and whose data is `tail` (a few bytes): what an
 * image bomb looks like to a reader (40000x40000 is 4.8 GB of RGB in about 50 bytes).
 */
export function pngBomb(width: number, height: number, tail: Buffer = Buffer.from('IDAT')): Buffer {
  const ihdr = Buffer.alloc(25);
  ihdr.writeUInt32BE(13, 0);
  ihdr.write('IHDR', 4, 'latin1');
  ihdr.writeUInt32BE(width, 8);
  ihdr.writeUInt32BE(height, 12);
  ihdr.set([8, 2, 0, 0, 0], 16); // 8-bit RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), ihdr, tail]);
}
