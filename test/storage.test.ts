/** Local object URIs: the same as Node's file URLs for UTF-8 names, and byte-exact for any name. */
import { createHash } from 'node:crypto';
import fs from 'node:fs'; // the module object itself, so that a spy on it sees digest.ts's reads
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { listObjects, objectPath, pathToUri, type ObjectMetadata } from '../src/backends/local/storage';

test.each([
  '/data/red-001.png',
  '/data/with space.jpg',
  '/data/it\'s "quoted"; DROP TABLE x; --.png',
  '/data/tilde~x.png',
  '/data/per%cent#hash?q.png',
  '/data/ünïcödé/画像.png',
  '/data/a+b=c,d@e:f.png',
  '/data/star*.png',
])('%s: the URI is what pathToFileURL gives, and maps back to the same path', (path) => {
  expect(pathToUri(path)).toBe(pathToFileURL(path).href);
  expect(pathToUri(Buffer.from(path))).toBe(pathToFileURL(path).href);
  expect(objectPath(pathToUri(path))).toBe(path);
});

test('a name that is not UTF-8 keeps its bytes: percent-encoded in the URI, a Buffer path back', () => {
  const path = Buffer.concat([Buffer.from('/data/latin1-'), Buffer.from([0xe9, 0xff]), Buffer.from(' x.png')]);
  const uri = pathToUri(path);
  expect(uri).toBe('file:///data/latin1-%E9%FF%20x.png');
  expect(objectPath(uri)).toEqual(path);
});

test('a file digest is read once per process while the file is unchanged, and again once its bytes change', async () => {
  const { createHash } = await import('node:crypto');
  const { fileDigest } = await import('../src/backends/local/digest');
  const dir = fs.mkdtempSync(join(tmpdir(), 'objinfer-digest-'));
  const path = join(dir, 'model.onnx');
  fs.writeFileSync(path, 'first bytes');
  const reads = jest.spyOn(fs, 'createReadStream');
  try {
    const md5 = (text: string) => createHash('md5').update(text).digest('base64');
    expect(await fileDigest(path, 'md5', 'base64')).toBe(md5('first bytes'));
    expect(await fileDigest(path, 'md5', 'base64')).toBe(md5('first bytes'));
    expect(reads).toHaveBeenCalledTimes(1);
    // Same size, mtime set back: only the ctime tells, and it is enough.
    const { atime, mtime } = fs.statSync(path);
    fs.writeFileSync(path, 'other bytes');
    fs.utimesSync(path, atime, mtime);
    expect(await fileDigest(path, 'md5', 'base64')).toBe(md5('other bytes'));
    expect(reads).toHaveBeenCalledTimes(2);
  } finally {
    reads.mockRestore();
  }
});

test('a pattern without wildcards lists the file it names (or a link to one), without walking its folder', async () => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'objinfer-named-'));
  fs.writeFileSync(join(dir, 'a.png'), 'a');
  fs.writeFileSync(join(dir, 'b.png'), 'b');
  fs.symlinkSync(join(dir, 'a.png'), join(dir, 'link.png'));
  fs.symlinkSync(join(dir, 'gone.png'), join(dir, 'broken.png'));
  fs.mkdirSync(join(dir, 'sub.png'));
  fs.symlinkSync(dir, join(dir, 'loop')); // a walk of the folder would meet it, and say so
  const named = (name: string) => pathToFileURL(join(dir, name)).href;
  const listed: ObjectMetadata[] = [];
  const warnings = await listObjects(['a.png', 'link.png', 'missing.png', 'sub.png', 'broken.png'].map(named), async (objects) => void listed.push(...objects));
  expect(listed.map((o) => o.uri)).toEqual([named('a.png'), named('link.png')]);
  expect(listed[1]!.size).toBe(1n);
  expect(warnings).toEqual([`broken symlink ${join(dir, 'broken.png')}: skipped`]);
  // What a walk of the folder finds for the same names.
  const walked: ObjectMetadata[] = [];
  await listObjects([named('*.png')], async (objects) => void walked.push(...objects));
  expect(walked.map((o) => o.uri).sort()).toEqual([named('a.png'), named('b.png'), named('link.png')]);
});

test('a digest one process read and saved is not read again by the next while the file is unchanged, and is once its bytes change', async () => {
  const home = fs.mkdtempSync(join(tmpdir(), 'objinfer-home-'));
  const path = join(home, 'model.onnx');
  fs.writeFileSync(path, 'first bytes');
  const before = process.env.OBJINFER_HOME;
  process.env.OBJINFER_HOME = home;
  const reads = jest.spyOn(fs, 'createReadStream');
  // Each isolated copy of the module is a process's: it knows only what the cache file holds.
  const digestInNewProcess = async () => {
    type Digest = typeof import('../src/backends/local/digest');
    let module: Digest | undefined;
    jest.isolateModules(() => {
      module = jest.requireActual<Digest>('../src/backends/local/digest');
    });
    const digest = await module!.fileDigest(path, 'sha256', 'hex');
    module!.saveDigests(); // as the model's upload does
    return digest;
  };
  try {
    const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
    expect(await digestInNewProcess()).toBe(sha256('first bytes'));
    expect(await digestInNewProcess()).toBe(sha256('first bytes'));
    expect(reads).toHaveBeenCalledTimes(1);
    expect(fs.statSync(join(home, 'cache', 'digests.json')).mode & 0o777).toBe(0o600);
    fs.writeFileSync(path, 'other bytes');
    expect(await digestInNewProcess()).toBe(sha256('other bytes'));
    expect(reads).toHaveBeenCalledTimes(2);
    // A cache file that is not ours to read costs a hash, not the run.
    fs.writeFileSync(join(home, 'cache', 'digests.json'), '{not json');
    expect(await digestInNewProcess()).toBe(sha256('other bytes'));
    expect(reads).toHaveBeenCalledTimes(3);
  } finally {
    reads.mockRestore();
    if (before === undefined) delete process.env.OBJINFER_HOME;
    else process.env.OBJINFER_HOME = before;
  }
});
