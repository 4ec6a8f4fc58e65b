/**
 * Decoding isolated from the worker (src/images/decoderPool.ts): real decoder processes,
 * killed for real, under real memory caps. Whatever happens to a decoder, the worker's
 * process goes on and the object that caused it fails alone, with the reason.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { decodeRgb8 } from '../src/images/decode';
import { DecoderPool } from '../src/images/decoderPool';
import { readHeader } from '../src/images/header';
import { MAX_IMAGE_PIXELS } from '../src/images/limits';
import { resizeRgb8 } from '../src/images/resize';
import { ImageDecodeError } from '../src/images/types';
import { pngBomb } from './support/hostile';

const dir = mkdtempSync(join(tmpdir(), 'objinfer-decoder-'));
const pools: DecoderPool[] = [];
afterAll(() => pools.forEach((p) => p.close()));

function pool(options: ConstructorParameters<typeof DecoderPool>[0] = {}): DecoderPool {
  const p = new DecoderPool(options);
  pools.push(p);
  return p;
}

async function png(name: string, width: number, height: number): Promise<string> {
  const path = join(dir, name);
  await sharp({ create: { width, height, channels: 3, background: { r: 200, g: 10, b: 10 } } })
    .png()
    .toFile(path);
  return path;
}

/** The PID of a decoder once one is at work (waits for it). */
async function busyDecoder(p: DecoderPool): Promise<number> {
  for (;;) {
    const busy = p.decoders().find((d) => d.busy)?.pid;
    if (busy !== undefined) return busy;
    await new Promise((r) => setTimeout(r, 5));
  }
}

const request = (path: string, size = 4) => ({ path, height: size, width: size, preserveAspectRatio: false, into: new Float32Array(size * size * 3) });

test("a decoded image arrives in the caller's tensor, resized", async () => {
  const path = await png('red.png', 10, 6);
  const into = new Float32Array(4 * 4 * 3);
  const outcome = await pool({ processes: 1 }).decode({ ...request(path), into });
  expect(outcome).toEqual({ ok: true });
  expect(Array.from(into.subarray(0, 3))).toEqual([200 / 255, 10 / 255, 10 / 255].map((v) => Math.fround(v)));
});

test('pixels come back through an unlinked file in memory: many images at once land in their own tensors, as over the pipe', async () => {
  const paths = await Promise.all(
    Array.from({ length: 24 }, (_, i) => {
      const noise = Buffer.from(Array.from({ length: 20 * 14 * 3 }, (_, j) => (j * 7919 + i * 104729) % 251));
      const path = join(dir, `noise-${i}.png`);
      return sharp(noise, { raw: { width: 20, height: 14, channels: 3 } })
        .png()
        .toFile(path)
        .then(() => path);
    }),
  );
  const expected = await Promise.all(paths.map(async (path) => resizeRgb8(await decodeRgb8(readFileSync(path)), 9, 7, false).data));
  const decodeAll = async (p: DecoderPool) => {
    const tensors = paths.map(() => new Float32Array(9 * 7 * 3));
    const outcomes = await Promise.all(paths.map((path, i) => p.decode({ path, height: 9, width: 7, preserveAspectRatio: false, into: tensors[i]! })));
    expect(outcomes.every((o) => o.ok)).toBe(true);
    return tensors;
  };
  const viaFile = pool({ processes: 2 });
  expect(await decodeAll(viaFile)).toEqual(expected);
  expect(await decodeAll(pool({ processes: 2, pixelFile: false }))).toEqual(expected);
  if (existsSync('/dev/shm')) {
    // Each decoder's fd 4 is the pixel file, already unlinked: a killed worker leaves nothing in /dev/shm.
    const [decoder] = viaFile.decoders();
    expect(readlinkSync(`/proc/${decoder!.pid}/fd/4`)).toMatch(new RegExp(`^/dev/shm/objinfer-pixels-${process.pid}-.* \\(deleted\\)$`));
    expect(readdirSync('/dev/shm').filter((name) => name.startsWith(`objinfer-pixels-${process.pid}-`))).toEqual([]);
  }
});

test('started ahead of work, every decoder loads libjpeg-turbo before its first image, and then decodes the images itself', async () => {
  const p = pool({ processes: 2 });
  p.start();
  p.start(); // twice: still two
  const started = p.decoders().map((d) => d.pid);
  expect(started).toHaveLength(2);
  const mapsTurboJpeg = (pid: number) => readFileSync(`/proc/${pid}/maps`, 'utf8').includes('libturbojpeg');
  for (const pid of started) {
    while (!mapsTurboJpeg(pid)) await new Promise((r) => setTimeout(r, 10));
  }
  const jpeg = join(dir, 'started.jpg');
  await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 0, g: 0, b: 255 } } })
    .jpeg()
    .toFile(jpeg);
  const outcomes = await Promise.all([1, 2, 3, 4].map(() => p.decode(request(jpeg))));
  expect(outcomes).toEqual(Array(4).fill({ ok: true }));
  expect(p.decoders().map((d) => d.pid)).toEqual(started);
});

test('an image bomb is refused from its header, before any decoder reads its pixels', async () => {
  const bomb = pngBomb(40_000, 40_000, Buffer.from('IDATtruncated'));
  expect(readHeader(bomb)).toMatchObject({ format: 'png', width: 40_000, height: 40_000 });
  const path = join(dir, 'bomb.png');
  writeFileSync(path, bomb);
  const outcome = await pool({ processes: 1 }).decode(request(path));
  expect(outcome).toEqual({
    ok: false,
    failure: {
      kind: 'permanent',
      message: `image is 40000x40000 = 1600000000 pixels; objinfer decodes at most ${MAX_IMAGE_PIXELS} pixels (a small file that decodes this big is an image bomb)`,
    },
  });
});

test('a decode that needs more memory than the cap fails alone, naming the cap; the next image decodes', async () => {
  const big = await png('big.png', 9000, 9000); // 81 megapixels: under the pixel limit, 243 MB of RGB, over a 200 MB cap
  const small = await png('small.png', 8, 8);
  const capped = pool({ processes: 1, memoryMb: 200 });
  const outcome = await capped.decode(request(big));
  expect(outcome.ok).toBe(false);
  expect(outcome.ok || outcome.failure.message).toMatch(/needs more memory than a decoder may use \(200 MB\)|decoder process (was killed|exited)/);
  expect(await capped.decode(request(small))).toEqual({ ok: true });
}, 60_000);

test('a JPEG that needs more memory than the cap fails alone, naming the cap; the next JPEG decodes', async () => {
  const jpeg = async (name: string, side: number) => {
    const path = join(dir, name);
    await sharp({ create: { width: side, height: side, channels: 3, background: { r: 10, g: 200, b: 10 } } })
      .jpeg()
      .toFile(path);
    return path;
  };
  const big = await jpeg('big.jpg', 9000); // 243 MB of RGB, over a 200 MB cap
  const capped = pool({ processes: 1, memoryMb: 200 });
  const outcome = await capped.decode(request(big));
  expect(outcome.ok || outcome.failure.message).toMatch(/^decoding this 9000x9000 JPEG needs more memory than a decoder may use \(200 MB\)/);
  expect(await capped.decode(request(await jpeg('small.jpg', 8)))).toEqual({ ok: true });
}, 60_000);

test('the cap bounds memory used, not address space reserved: a decoder capped at 300 MB decodes', async () => {
  // node and libvips reserve about 1 GB of address space before decoding anything (more with
  // more cores); an address-space cap of 800 MB failed every image on CI's machine.
  const small = await png('small-capped.png', 8, 8);
  expect(await pool({ processes: 1, memoryMb: 300 }).decode(request(small))).toEqual({ ok: true });
  expect(await pool({ processes: 1, memoryMb: 300 }).decode(request(await png('medium.png', 2000, 2000)))).toEqual({ ok: true });
}, 60_000);

test('a decoder killed while it decodes: the object is tried once more in a fresh process, and decodes', async () => {
  const path = await png('slow.png', 6000, 6000);
  const p = pool({ processes: 1 });
  const pending = p.decode(request(path));
  process.kill(await busyDecoder(p), 'SIGKILL');
  expect(await pending).toEqual({ ok: true });
  expect(p.deaths).toBe(1);
}, 60_000);

test('a decoder holds the next job while it decodes one; killed, only the one it was decoding counts a death', async () => {
  const slow = await png('slow-first.png', 6000, 6000);
  const small = await png('small-second.png', 8, 8);
  const p = pool({ processes: 1 });
  const first = p.decode(request(slow));
  const second = p.decode(request(small));
  process.kill(await busyDecoder(p), 'SIGKILL');
  expect(await Promise.all([first, second])).toEqual([{ ok: true }, { ok: true }]);
  expect(p.deaths).toBe(1);
}, 60_000);

test('a decoder that ends itself after an answer (its memory spent) hands the job it held to a fresh one', async () => {
  const big = await png('big-first.png', 9000, 9000);
  const small = await png('small-after-big.png', 8, 8);
  const capped = pool({ processes: 1, memoryMb: 200 });
  const [bigOutcome, smallOutcome] = await Promise.all([capped.decode(request(big)), capped.decode(request(small))]);
  expect(bigOutcome.ok).toBe(false);
  expect(smallOutcome).toEqual({ ok: true });
}, 60_000);

test('a decoder that dies on every try: the object fails with the reason, and the pool keeps working', async () => {
  const path = await png('any.png', 8, 8);
  // 8 MB of memory: node cannot start its threads, so every decoder dies at once.
  const starved = pool({ processes: 1, memoryMb: 8 });
  const outcome = await starved.decode(request(path));
  expect(outcome).toEqual({
    ok: false,
    failure: {
      kind: 'permanent',
      message: expect.stringMatching(/^the decoder process (exited with code \d+|was killed by SIG\w+).* while decoding this object \(2 times\)$/),
    },
  });
  expect(starved.deaths).toBe(2);
  expect(await pool({ processes: 1 }).decode(request(path))).toEqual({ ok: true });
}, 60_000);

test('a decode that hangs past the timeout is stopped and fails alone', async () => {
  const path = await png('timeout.png', 3000, 3000);
  const outcome = await pool({ processes: 1, timeoutMs: 1 }).decode(request(path));
  expect(outcome).toEqual({ ok: false, failure: { kind: 'permanent', message: expect.stringMatching(/took longer than 0s and was stopped/) } });
});

test('a file replaced after it was listed is not decoded under its old generation (a transient failure)', async () => {
  const path = await png('changing.png', 8, 8);
  const outcome = await pool({ processes: 1 }).decode({ ...request(path), expect: { size: '1', mtimeNs: '0', ctimeNs: '0' } });
  expect(outcome).toEqual({ ok: false, failure: { kind: 'transient', message: 'changed since it was listed; the next run classifies its new content' } });
});

test('a file that cannot be read now is a transient failure', async () => {
  const outcome = await pool({ processes: 1 }).decode(request(join(dir, 'gone.png')));
  expect(outcome).toEqual({ ok: false, failure: { kind: 'transient', message: expect.stringMatching(/^cannot read the object now \(ENOENT\)/) } });
});

test('a FIFO named like an image is refused at once as not a regular file, and the decoder goes on', async () => {
  const fifo = join(dir, 'pipe.jpg');
  execFileSync('mkfifo', [fifo]);
  const decoders = pool({ processes: 1, timeoutMs: 10_000 });
  // Opening a FIFO for reading waits for a writer; without O_NONBLOCK this waited for the timeout.
  const outcome = await decoders.decode(request(fifo));
  expect(outcome).toEqual({ ok: false, failure: { kind: 'permanent', message: 'not a regular file' } });
  expect(await decoders.decode(request(await png('after-fifo.png', 8, 8)))).toEqual({ ok: true });
}, 30_000);

test('headers: JPEG start-of-frame, PNG IHDR and BMP sizes are read without decoding', async () => {
  const jpeg = await sharp({ create: { width: 33, height: 17, channels: 3, background: 'white' } })
    .jpeg()
    .toBuffer();
  expect(readHeader(jpeg)).toEqual({ format: 'jpeg', width: 33, height: 17 });
  expect(() => readHeader(Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x02]))).toThrow(ImageDecodeError);
  expect(() => readHeader(Buffer.from('GIF89a'))).toThrow(/only JPEG, PNG and BMP/);
});
