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
}

export interface DecodeFailure {
  message: string;
  kind: 'permanent' | 'transient';
}

export const STATUS_OK = 0;
export const STATUS_FAILED = 1;
