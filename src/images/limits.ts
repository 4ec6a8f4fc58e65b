/**
 * What objinfer will decode, and why these numbers.
 *
 * MAX_IMAGE_BYTES is BigQuery's own: ML.DECODE_IMAGE takes at most 10 MB (10,000,000 bytes)
 * of input, so both backends refuse larger objects up front.
 *
 * MAX_IMAGE_PIXELS is ours. BigQuery documents no pixel limit, and its byte limit bounds
 * nothing: a 40000x40000 single-colour PNG is 4.5 MB and would decode to 4.8 GB of RGB.
 * 100 megapixels holds every camera and phone photo that fits in 10 MB (50 MP sensors are
 * the largest common ones) and bounds a decode at 300 MB of 8-bit RGB, which the decoder
 * process's memory cap (DECODER_MEMORY_MB) holds with room for libvips' own buffers.
 * The size is read from the header before any decoder sees the bytes.
 */
export const MAX_IMAGE_BYTES = 10_000_000;
export const MAX_IMAGE_PIXELS = 100_000_000;

/**
 * Ours too: every scan of a progressive JPEG revisits the whole image, so a small file that
 * repeats a scan thousands of times decodes for minutes. Encoders write about 10 scans;
 * libjpeg-turbo advises a limit for untrusted input. TensorFlow has none (it would decode such
 * a file, slowly); objinfer refuses it at once.
 */
export const MAX_PROGRESSIVE_SCANS = 500;

/** The formats ML.DECODE_IMAGE accepts. */
export const ACCEPTED_CONTENT_TYPES = ['image/jpeg', 'image/png', 'image/bmp'] as const;

/**
 * Private writable memory each decoder process may use (RLIMIT_DATA, `ulimit -d`); a decode
 * that needs more fails alone. Not the address space (`ulimit -v`): node and libvips reserve
 * about 1 GB of it before decoding anything, more on machines with more cores, so an
 * address-space cap fails small images on big machines.
 */
export const DECODER_MEMORY_MB = Number(process.env.OBJINFER_DECODER_MEMORY_MB ?? 2048);

/** A decode that takes longer than this is killed and the object recorded as failed. */
export const DECODE_TIMEOUT_MS = 60_000;
