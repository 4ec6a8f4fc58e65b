/** Local object URIs: the same as Node's file URLs for UTF-8 names, and byte-exact for any name. */
import { pathToFileURL } from 'node:url';
import { objectPath, pathToUri } from '../src/backends/local/storage';

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
