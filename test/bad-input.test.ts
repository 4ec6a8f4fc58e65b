/**
 * Bad input, tried as a new user would (DESIGN §7): every bad object lands in the errors
 * table with a reason, every valid object still gets exactly one prediction, and bad
 * config or models fail before anything is written, naming what to fix.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client, Connection } from '@temporalio/client';
import sharp from 'sharp';
import { stringify } from 'yaml';
import { loadConfig, type RunSpec } from '../src/config';
import { encodeModel } from '../src/models';
import { CLI } from './support/paths';
import { activityStarts, failureOfRun, makeFixture, query, runToEnd, testClient, testServer, uniqueQueue } from './support/pipeline';

let client: Client;
let connection: Connection;
beforeAll(async () => ({ client, connection } = await testClient()));
afterAll(() => connection.close());

const RED = { r: 240, g: 20, b: 20 };
const GREEN = { r: 20, g: 240, b: 20 };
const BLUE = { r: 20, g: 20, b: 240 };
type Rgb = typeof RED;

const solid = (width: number, height: number, colour: Rgb, channels: 3 | 4 = 3) =>
  sharp({ create: { width, height, channels, background: channels === 4 ? { ...colour, alpha: 0.5 } : colour } });

/** A solid-colour 8x8 BMP with the given layout; 1-bit and RLE are what BigQuery's decoder refuses too. */
function bmp(colour: Rgb, options: { bpp: 8 | 24 | 32 | 1; topDown?: boolean; compression?: number }): Buffer {
  const size = 8;
  const paletteBytes = options.bpp <= 8 ? 4 * 2 ** options.bpp : 0;
  const stride = Math.ceil((size * options.bpp) / 32) * 4;
  const offset = 54 + paletteBytes;
  const out = Buffer.alloc(offset + stride * size);
  out.write('BM', 0, 'latin1');
  out.writeUInt32LE(out.length, 2);
  out.writeUInt32LE(offset, 10);
  out.writeUInt32LE(40, 14);
  out.writeInt32LE(size, 18);
  out.writeInt32LE(options.topDown ? -size : size, 22);
  out.writeUInt16LE(1, 26);
  out.writeUInt16LE(options.bpp, 28);
  out.writeUInt32LE(options.compression ?? 0, 30);
  if (paletteBytes)
    out.set([colour.b, colour.g, colour.r, 0], 54); // every pixel is index 0
  else {
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) out.set([colour.b, colour.g, colour.r], offset + y * stride + (x * options.bpp) / 8);
    }
  }
  return out;
}

test('a folder of bad objects: each lands in the errors table with its reason; every valid object is predicted once', async () => {
  const taskQueue = uniqueQueue('bad-input');
  const fixture = await makeFixture({
    labels: [], // the objects below are all there is
    taskQueue,
    config: {
      model: { name: 'color_classifier', source: 'models/color-classifier.onnx', labels: 'models/color-classifier.labels.txt', preserveAspectRatio: true },
    },
  });
  const dir = fixture.imagesDir;
  const write = (name: string | Buffer, bytes: Buffer) => writeFileSync(Buffer.concat([Buffer.from(`${dir}/`), Buffer.from(name)]), bytes);
  const noisy = await sharp({ create: { width: 200, height: 200, channels: 3, background: RED, noise: { type: 'gaussian', mean: 128, sigma: 60 } } })
    .jpeg()
    .toBuffer();

  // Valid, if unusual: each must get a prediction of the colour it shows.
  const valid: Record<string, string> = {
    'alpha-red.png': 'red',
    '16bit-green.png': 'green',
    'cmyk-blue.jpg': 'blue',
    'gray.jpg': '',
    'one-pixel-red.png': 'red',
    'bmp24-red.bmp': 'red',
    'bmp32-topdown-green.bmp': 'green',
    'bmp8-palette-blue.bmp': 'blue',
    [`long-${'x'.repeat(230)}-red.png`]: 'red',
    [`quote-it's "red"; DROP TABLE predictions; --.png`]: 'red',
    'inside-a-folder.jpg/green.png': 'green',
  };
  write('alpha-red.png', await solid(16, 16, RED, 4).png().toBuffer());
  write('16bit-green.png', await solid(16, 16, GREEN).toColourspace('rgb16').png().toBuffer());
  write('cmyk-blue.jpg', await solid(16, 16, BLUE).toColourspace('cmyk').jpeg().toBuffer());
  write('gray.jpg', await solid(16, 16, { r: 128, g: 128, b: 128 }).toColourspace('b-w').jpeg().toBuffer());
  write('one-pixel-red.png', await solid(1, 1, RED).png().toBuffer());
  write('bmp24-red.bmp', bmp(RED, { bpp: 24 }));
  write('bmp32-topdown-green.bmp', bmp(GREEN, { bpp: 32, topDown: true }));
  write('bmp8-palette-blue.bmp', bmp(BLUE, { bpp: 8 }));
  write(`long-${'x'.repeat(230)}-red.png`, await solid(8, 8, RED).png().toBuffer());
  write(`quote-it's "red"; DROP TABLE predictions; --.png`, await solid(8, 8, RED).png().toBuffer());
  mkdirSync(join(dir, 'inside-a-folder.jpg'));
  write('inside-a-folder.jpg/green.png', await solid(8, 8, GREEN).png().toBuffer());
  mkdirSync(join(dir, 'empty-folder.png')); // a folder named like an image is not an object
  const notUtf8 = Buffer.concat([Buffer.from('latin1-'), Buffer.from([0xe9, 0xff]), Buffer.from('-red.png')]);
  write(notUtf8, await solid(8, 8, RED).png().toBuffer());

  // Invalid: each must land in the errors table with a reason that says why.
  const invalid: Record<string, RegExp> = {
    'zero-bytes.jpg': /empty object \(0 bytes\)/,
    'truncated.jpg': /corrupt JPEG data: .*premature end/i,
    'animated.gif': /unsupported image format: only JPEG, PNG and BMP/,
    'photo.webp': /unsupported image format/,
    'scan.tiff': /unsupported image format/,
    'bmp1-red.bmp': /invalid BMP: unsupported bit depth 1/,
    'bmp-rle-red.bmp': /invalid BMP: unsupported compression 1/,
    'over-10mb.png': /at most 10000000 bytes \(10 MB\)/,
    // BigQuery's limit is 10,000,000 bytes, not 10 MiB: one byte over is refused.
    'one-byte-over.png': /image is 10000001 bytes; DECODE_IMAGE accepts at most 10000000 bytes/,
    'strip-10000x10.png': /size of 0|rounds to 0|0x/,
  };
  write('zero-bytes.jpg', Buffer.alloc(0));
  write('truncated.jpg', noisy.subarray(0, Math.floor(noisy.length / 2)));
  write('animated.gif', await solid(8, 8, RED).gif().toBuffer());
  write('photo.webp', await solid(8, 8, RED).webp().toBuffer());
  write('scan.tiff', await solid(8, 8, RED).tiff().toBuffer());
  write('bmp1-red.bmp', bmp(RED, { bpp: 1 }));
  write('bmp-rle-red.bmp', bmp(RED, { bpp: 8, compression: 1 }));
  write('over-10mb.png', Buffer.concat([await solid(8, 8, RED).png().toBuffer(), Buffer.alloc(10 * 1024 * 1024)]));
  const small = await solid(8, 8, RED).png().toBuffer();
  write('one-byte-over.png', Buffer.concat([small, Buffer.alloc(10_000_001 - small.length)]));
  write('strip-10000x10.png', await solid(10_000, 10, RED).png().toBuffer());

  const summary = await withPipeline(taskQueue, fixture.config);
  const validCount = Object.keys(valid).length + 1; // the list and the non-UTF-8 name
  expect(summary).toMatchObject({ objectsSeen: validCount + Object.keys(invalid).length, predicted: validCount, failed: Object.keys(invalid).length });

  const predictions = await query<{ uri: string; label: string; n: bigint }>(
    fixture.config,
    'SELECT uri, any_value(label) AS label, count(*) AS n FROM objinfer_test.predictions GROUP BY uri',
  );
  const errors = await query<{ uri: string; error: string }>(fixture.config, 'SELECT uri, error FROM objinfer_test.predictions_errors');
  expect(predictions.every((p) => Number(p.n) === 1)).toBe(true);
  const byName = (uri: string) => decodeURIComponent(uri.slice(`file://${dir}/`.length).replace(/%E9%FF/, '<latin1>'));
  const predicted = Object.fromEntries(predictions.map((p) => [byName(p.uri), p.label]));
  for (const [name, label] of Object.entries(valid)) {
    expect(predicted).toHaveProperty([name]);
    if (label) expect([name, predicted[name]]).toEqual([name, label]);
  }
  expect(predicted['latin1-<latin1>-red.png']).toBe('red'); // URI keeps the raw bytes, percent-encoded
  expect(Object.keys(predicted).some((name) => name.startsWith('empty-folder.png'))).toBe(false);
  const failed = Object.fromEntries(errors.map((e) => [byName(e.uri), e.error]));
  expect(Object.keys(failed).sort()).toEqual(Object.keys(invalid).sort());
  for (const [name, reason] of Object.entries(invalid)) expect([name, failed[name]]).toEqual([name, expect.stringMatching(reason)]);
  // The quoted name reached SQL only as a bound value: the table it names is intact.
  expect(await query(fixture.config, 'SELECT count(*) AS n FROM objinfer_test.predictions')).toEqual([{ n: BigInt(validCount) }]);
});

const withPipeline = (taskQueue: string, config: RunSpec) => runToEnd(client, taskQueue, config);
const failureOf = (taskQueue: string, config: RunSpec) => failureOfRun(client, taskQueue, config);

test('a source pattern that matches nothing: the run does no work and says why', async () => {
  const taskQueue = uniqueQueue('empty-glob');
  const fixture = await makeFixture({ labels: ['red'], taskQueue, config: { sourceUris: ['images/*.jpeg'] } });
  const summary = await withPipeline(taskQueue, fixture.config);
  expect(summary).toMatchObject({ objectsSeen: 0, predicted: 0, failed: 0, batches: 0 });
  expect(summary.warnings).toEqual([expect.stringMatching(/sourceUris matched no objects \(file:\/\/.*\/images\/\*\.jpeg\): nothing to predict/)]);
  expect((await activityStarts(client, summary.workflowId)).some((a) => a.activityType === 'predictBatch')).toBe(false);
});

test('a folder the worker may not read fails at once, naming the folder and what to grant', async () => {
  const taskQueue = uniqueQueue('unreadable');
  const fixture = await makeFixture({ labels: ['red'], taskQueue, config: { sourceUris: ['images/*'] } });
  mkdirSync(join(fixture.imagesDir, 'private'));
  chmodSync(join(fixture.imagesDir, 'private'), 0o000);
  // root reads everything, so the listing runs as an unprivileged user when the tests run as root.
  // That user may not enter the clone (it may sit in a private folder): copy the listing code out.
  const code = join(fixture.dir, 'code');
  mkdirSync(join(code, 'backends', 'local'), { recursive: true });
  copyFileSync(require.resolve('../dist/backends/local/storage.js'), join(code, 'backends', 'local', 'storage.js'));
  copyFileSync(require.resolve('../dist/errors.js'), join(code, 'errors.js'));
  copyFileSync(require.resolve('../dist/glob.js'), join(code, 'glob.js'));
  copyFileSync(require.resolve('../dist/stateDir.js'), join(code, 'stateDir.js'));
  copyFileSync(require.resolve('../dist/backends/local/digest.js'), join(code, 'backends', 'local', 'digest.js'));
  const script =
    `require(${JSON.stringify(join(code, 'backends', 'local', 'storage.js'))}).listObjects(['file://${fixture.imagesDir}/*'], async () => {}).then(` +
    `() => console.log('listed'), (e) => console.log(JSON.stringify({ type: e.type, message: e.message })))`;
  const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
  chmodSync(fixture.dir, 0o755);
  chmodSync(code, 0o755);
  // Nor may it run a node kept in root's home (make's Node.js 22 lives in ~/.cache): a copy beside the code.
  const node = join(code, 'node');
  copyFileSync(process.execPath, node);
  chmodSync(node, 0o755);
  // From a folder that user may read: Node.js 24 refuses to start where it cannot read the folders above for a package.json.
  const result = spawnSync(node, ['-e', script], { encoding: 'utf8', cwd: code, ...asUser });
  expect(result.stderr).toBe('');
  const failure = JSON.parse(result.stdout) as { type: string; message: string };
  expect(failure.type).toBe('PermissionDenied');
  expect(failure.message).toBe(
    `cannot list ${fixture.imagesDir}/private: permission denied (EACCES); give the user the worker runs as read and execute permission on it`,
  );
  expect(loadConfig(fixture.configFile).sourceUris).toHaveLength(1); // the config itself was fine
});

test('a model that does not take NHWC images fails before inference, naming expected and actual shapes', async () => {
  const taskQueue = uniqueQueue('nchw');
  const fixture = await makeFixture({ labels: ['red'], taskQueue });
  const nchw = encodeModel({
    name: 'nchw',
    inputs: [{ name: 'images', dims: ['batch', 3, 32, 32] }],
    outputs: [{ name: 'scores', dims: ['batch', 3] }],
    initializers: [],
    nodes: [{ opType: 'ReduceMean', inputs: ['images'], outputs: ['scores'], intLists: { axes: [2, 3] }, ints: { keepdims: 0 } }],
  });
  writeFileSync(join(fixture.dir, 'nchw.onnx'), nchw);
  const config = { ...fixture.config, model: { ...fixture.config.model, name: 'nchw', source: join(fixture.dir, 'nchw.onnx'), labels: undefined } };
  const failure = await failureOf(taskQueue, config);
  expect(failure.type).toBe('ModelShapeMismatch');
  expect(failure.message).toMatch(
    /^model input "images" is float32 \[batch, 3, 32, 32\]; objinfer feeds float32 NHWC images \[batch, height, width, 3\] \(this one is channels-first, NCHW, as PyTorch exports\): export it channels-last, .*permute\(0, 3, 1, 2\)/,
  );
  expect(await query(fixture.config, "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'predictions'")).toEqual([{ n: 0n }]);
});

test('a labels file with the wrong number of lines fails before inference, naming both counts', async () => {
  const taskQueue = uniqueQueue('labels');
  const fixture = await makeFixture({ labels: ['red'], taskQueue });
  writeFileSync(join(fixture.dir, 'short-labels.txt'), 'red\ngreen\n');
  const config = { ...fixture.config, model: { ...fixture.config.model, labels: join(fixture.dir, 'short-labels.txt') } };
  const failure = await failureOf(taskQueue, config);
  expect(failure.type).toBe('ModelShapeMismatch');
  expect(failure.message).toMatch(
    /^model\.labels \(.*short-labels\.txt\) has 2 labels \(blank lines are not counted\) but output "scores" of .*color-classifier\.onnx has 8 classes \[batch, 8\]; use the labels file that belongs to this model$/,
  );
});

describe('bad config: a non-zero exit before any side effect, naming the field and the rule', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['an unknown key', { batch: { size: 4, sise: 8 } }, /batch\.sise: unknown field "sise"; check the spelling/],
    ['a wrong type', { batch: { size: 'ten' } }, /batch\.size: .*expected number/i],
    ['a negative batch size', { batch: { size: -4 } }, /batch\.size: must be at least 1 image/],
    ['too many batches at once', { batch: { concurrency: 5000 } }, /batch\.concurrency: must be at most 64 batches at once/],
    ['a batch too large for one activity', { batch: { size: 20_000 } }, /batch\.size: must be at most 10000 images/],
    ['SQL in a dataset name', { dataset: 'd; DROP TABLE x' }, /dataset: /],
    ['a quote in a table name', { results: { table: 'p"--' } }, /results\.table: /],
    ['a backtick in a model name', { model: { name: 'm`x', source: 'models/color-classifier.onnx' } }, /model\.name: /],
    ['SQL in an object table name', { objectTable: "t' OR '1'='1" }, /objectTable: /],
  ];
  test.each(cases)('%s', async (_name, override, message) => {
    const fixture = await makeFixture({ labels: [], taskQueue: 'unused' });
    const file = join(fixture.dir, 'bad.yaml');
    writeFileSync(
      file,
      stringify({
        name: 'bad',
        dataset: 'd',
        bucket: 'b-models',
        objectTable: 'images',
        sourceUris: ['images/*'],
        model: { name: 'm', source: 'models/color-classifier.onnx' },
        local: { warehouse: 'w.duckdb', storage: 'storage' },
        ...override,
      }),
    );
    const run = spawnSync(CLI, ['run', '--config', file], { encoding: 'utf8', env: { ...process.env, TEMPORAL_ADDRESS: testServer().address } });
    expect(run.status).not.toBe(0);
    expect(run.stderr).toMatch(message);
    expect(run.stderr).toMatch(/nothing was changed/);
    expect(existsSync(join(fixture.dir, 'w.duckdb'))).toBe(false);
    expect(existsSync(join(fixture.dir, 'storage'))).toBe(false);
  });
});
