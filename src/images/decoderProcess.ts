/**
 * A decoder process: reads, decodes and resizes one image at a time for its parent (see
 * decoderPool.ts), so that libvips meeting hostile bytes, or a decode that needs more
 * memory than the process may have, can only end this process, never the worker.
 *
 * In: one JSON job per line on stdin. Out, on fd 3: a 12-byte header (job id, status,
 * payload length; little-endian u32) then the payload: float32 pixels (status 0), a JSON
 * failure (status 1), or nothing when the pixels went into the pixel file (status 2).
 */
import { closeSync, constants, createWriteStream, fstatSync, openSync, readFileSync, writeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { decodeRgb8 } from './decode';
import { turboJpeg } from './jpeg';
import { MAX_IMAGE_BYTES } from './limits';
import { resizeRgb8 } from './resize';
import { ImageDecodeError, ImageResizeError } from './types';

import { PIXELS_FD, STATUS_FAILED, STATUS_IN_FILE, STATUS_OK, type DecodeFailure, type DecodeJob } from './decoderProtocol';

let out: ReturnType<typeof createWriteStream>;

function send(id: number, status: number, payload: Uint8Array): void {
  const header = Buffer.alloc(12);
  header.writeUInt32LE(id, 0);
  header.writeUInt32LE(status, 4);
  header.writeUInt32LE(payload.byteLength, 8);
  out.write(header);
  out.write(payload);
}

/** Writes the pixels into the pixel file at `offset`; false if that fails (the pipe carries them then). */
function writeToFile(bytes: Uint8Array, offset: number): boolean {
  try {
    for (let done = 0; done < bytes.length;) done += writeSync(PIXELS_FD, bytes, done, bytes.length - done, offset + done);
    return true;
  } catch {
    return false;
  }
}

/** One pixel array for every job that goes through the pixel file: no 600 KB allocation per image to collect. */
let reused = new Float32Array(0);

function pixelArray(length: number, reusable: boolean): Float32Array {
  if (!reusable) return new Float32Array(length);
  if (reused.length < length) reused = new Float32Array(length);
  return reused.subarray(0, length);
}

class Transient extends Error {}

function pathOf(job: DecodeJob): string | Buffer {
  const bytes = Buffer.from(job.path, 'base64');
  const text = bytes.toString('utf8');
  return Buffer.from(text, 'utf8').equals(bytes) ? text : bytes;
}

/**
 * Synchronous: this process decodes one image at a time, and the libuv thread pool's round
 * trips cost 0.3 ms of CPU per image (five calls). O_NONBLOCK: opening a FIFO returns at
 * once (and is refused as not a regular file) instead of waiting for a writer.
 */
function readChecked(job: DecodeJob): Buffer {
  let fd: number;
  try {
    fd = openSync(pathOf(job), constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    throw new Transient(
      `cannot read the object now (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); it will be tried again on the next run`,
    );
  }
  try {
    const before = fstatSync(fd, { bigint: true });
    const changed = (stat: typeof before) =>
      job.expect && (String(stat.size) !== job.expect.size || String(stat.mtimeNs) !== job.expect.mtimeNs || String(stat.ctimeNs) !== job.expect.ctimeNs);
    if (changed(before)) throw new Transient('changed since it was listed; the next run classifies its new content');
    if (!before.isFile()) throw new ImageDecodeError('not a regular file');
    if (before.size > BigInt(MAX_IMAGE_BYTES)) {
      throw new ImageDecodeError(`image is ${before.size} bytes; DECODE_IMAGE accepts at most ${MAX_IMAGE_BYTES} bytes (10 MB)`);
    }
    const bytes = readFileSync(fd);
    if (changed(fstatSync(fd, { bigint: true }))) throw new Transient('changed while it was being read; the next run classifies its new content');
    return bytes;
  } finally {
    closeSync(fd);
  }
}

/**
 * libvips out of memory, or unable to start a thread: this process's memory is spent or
 * scattered, and the next image would fail for no fault of its own. Such a failure ends
 * the process after its answer; the pool starts a fresh one.
 */
const EXHAUSTED = /out of memory|Error creating thread|Resource temporarily unavailable|Cannot allocate memory/i;

/** Decodes one job and answers; returns whether this process should end (its resources are spent). */
async function run(job: DecodeJob): Promise<boolean> {
  try {
    const bytes = readChecked(job);
    const pixels = pixelArray(job.height * job.width * 3, job.offset !== undefined);
    const resized = resizeRgb8(await decodeRgb8(bytes), job.height, job.width, job.preserveAspectRatio, pixels);
    if (resized.height !== job.height || resized.width !== job.width) {
      throw new ImageResizeError(
        `resized to ${resized.height}x${resized.width} keeping the aspect ratio, but the model takes ${job.height}x${job.width}; set model.preserveAspectRatio: false`,
      );
    }
    const out = new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.byteLength);
    if (job.offset !== undefined && writeToFile(out, job.offset)) send(job.id, STATUS_IN_FILE, new Uint8Array(0));
    else send(job.id, STATUS_OK, job.offset === undefined ? out : Uint8Array.from(out)); // the reused array is not the stream's to keep
    return false;
  } catch (error) {
    const message = (error as Error).message.split('\n')[0]!;
    const known = error instanceof ImageDecodeError || error instanceof ImageResizeError || error instanceof Transient;
    const exhausted = EXHAUSTED.test(message);
    // Out of memory is the image's doing (it needs more than the cap); a thread that could not start is not.
    const transient = error instanceof Transient || (exhausted && !/out of memory/i.test(message));
    const failure: DecodeFailure = { message: known ? message : `decoder error: ${message}`, kind: transient ? 'transient' : 'permanent' };
    send(job.id, STATUS_FAILED, Buffer.from(JSON.stringify(failure)));
    return exhausted;
  }
}

if (require.main === module) {
  out = createWriteStream('', { fd: 3 });
  // One job at a time, in the order sent: when this process dies, the parent knows which
  // object it was decoding (the first it has no answer for).
  let queue = Promise.resolve();
  let ending = false;
  createInterface({ input: process.stdin }).on('line', (line) => {
    const job = JSON.parse(line) as DecodeJob;
    queue = queue.then(async () => {
      if (ending) return; // the parent sends unanswered jobs to another decoder when this one exits
      if (await run(job)) {
        ending = true;
        out.end(() => process.exit(0));
      }
    });
  });
  process.stdin.on('end', () => void queue.then(() => out.end()));
  // libjpeg-turbo now, not at the first image: the pool may start decoders ahead of their work.
  queue = queue.then(() => void turboJpeg());
}
