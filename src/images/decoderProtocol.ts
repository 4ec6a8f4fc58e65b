/** What a decoder process (decoderProcess.ts) and its pool (decoderPool.ts) say to each other. */
export interface DecodeJob {
  id: number;
  /** The path's bytes, base64 (file names need not be UTF-8). */
  path: string;
  /** What the listing saw; a file that differs was replaced since and is not decoded. */
  expect?: { size: string; mtimeNs: string; ctimeNs: string };
  height: number;
  width: number;
  preserveAspectRatio: boolean;
  /** Where in the pixel file (fd PIXELS_FD) to write the pixels; absent: send them on fd 3. */
  offset?: number;
}

export interface DecodeFailure {
  message: string;
  kind: 'permanent' | 'transient';
}

export const STATUS_OK = 0;
export const STATUS_FAILED = 1;
/** The pixels are in the pixel file at the job's offset; the frame has no payload. */
export const STATUS_IN_FILE = 2;

/**
 * The decoder's end of the pixel file: a file in memory (tmpfs where there is one) that
 * both processes have open, unlinked at once so nothing is left behind. Pixels written
 * there reach the caller's tensor in one read, where a pipe hands them over in 64 KiB
 * chunks that each become a buffer for the worker's garbage collector (docs/benchmarks.md).
 */
export const PIXELS_FD = 4;
