/**
 * How `objinfer watch` gathers changes (src/backends/local/watch.ts MicroBatcher): a batch
 * closes after a quiet `debounce`, at `maxWait` after its first change however busy the
 * stream, or at `maxBatch` paths; a path named twice in a batch is taken once.
 */
import { MicroBatcher } from '../src/backends/local/watch';

beforeEach(() => jest.useFakeTimers({ now: 0 }));
afterEach(() => jest.useRealTimers());

function batcher(settings: { debounceMs: number; maxWaitMs: number; maxBatch: number }) {
  const taken: { at: number; paths: string[] }[] = [];
  const b = new MicroBatcher(settings, async (paths) => void taken.push({ at: Date.now(), paths: paths.map(String) }));
  return { taken, add: (name: string) => b.add(Buffer.from(name)), flush: () => b.flush() };
}

const settle = () => jest.advanceTimersByTimeAsync(0);

test('a burst closes after a quiet debounce, each path once', async () => {
  const { taken, add } = batcher({ debounceMs: 300, maxWaitMs: 10_000, maxBatch: 100 });
  add('a');
  await jest.advanceTimersByTimeAsync(200);
  add('b');
  add('a');
  await jest.advanceTimersByTimeAsync(299);
  expect(taken).toEqual([]);
  await jest.advanceTimersByTimeAsync(1);
  expect(taken).toEqual([{ at: 500, paths: ['a', 'b'] }]);
});

test('a steady stream, never quiet, still closes a batch at maxWait after its first path', async () => {
  const { taken, add } = batcher({ debounceMs: 300, maxWaitMs: 1000, maxBatch: 100 });
  for (let i = 0; i < 25; i++) {
    add(`p${i}`);
    await jest.advanceTimersByTimeAsync(100); // 10 a second: never 300 ms quiet
  }
  expect(taken.map((t) => t.at)).toEqual([1000, 2000]);
  expect(taken[0]!.paths).toHaveLength(10);
});

test('a batch closes at maxBatch paths at once, and flush hands on the rest', async () => {
  const { taken, add, flush } = batcher({ debounceMs: 300, maxWaitMs: 1000, maxBatch: 3 });
  ['a', 'b', 'c', 'd'].forEach(add);
  await settle();
  expect(taken).toEqual([{ at: 0, paths: ['a', 'b', 'c'] }]);
  await flush();
  expect(taken.at(-1)).toEqual({ at: 0, paths: ['d'] });
});
