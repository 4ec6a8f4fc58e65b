/**
 * CPU turns in the worker (src/backends/local/runtime.ts): an inference run has the CPU to
 * itself; decoding and warehouse work may share a turn; turns start in the order asked.
 */
import { cpuTurn, turnProfile, type TurnKind } from '../src/backends/local/runtime';

/** A turn that records when it starts and ends when `finish` is called. */
function turn(kind: TurnKind, log: string[], name: string) {
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  let started!: () => void;
  const start = new Promise<void>((resolve) => (started = resolve));
  const result = cpuTurn(kind, async () => {
    log.push(`start ${name}`);
    started();
    await done;
    log.push(`end ${name}`);
  });
  return { start, finish, result };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

test('warehouse work starts beside decoding; an inference run waits for both, and later turns wait for it', async () => {
  const log: string[] = [];
  const decode = turn('decode', log, 'decode');
  await decode.start;
  const write = turn('warehouse', log, 'write');
  await write.start; // would hang if turns were strictly one at a time
  const infer = turn('inference', log, 'infer');
  const nextDecode = turn('decode', log, 'next decode');
  await tick();
  expect(log).toEqual(['start decode', 'start write']);
  decode.finish();
  await decode.result;
  await tick();
  expect(log).not.toContain('start infer'); // the write is still going
  write.finish();
  await infer.start;
  await tick();
  expect(log).not.toContain('start next decode'); // asked after the inference run: waits for it
  infer.finish();
  await nextDecode.start;
  nextDecode.finish();
  await Promise.all([write.result, infer.result, nextDecode.result]);
  expect(log).toEqual(['start decode', 'start write', 'end decode', 'end write', 'start infer', 'end infer', 'start next decode', 'end next decode']);
});

test('a failed turn frees the CPU for the next', async () => {
  await expect(cpuTurn('inference', () => Promise.reject(new Error('model broke')))).rejects.toThrow('model broke');
  await expect(cpuTurn('inference', async () => 'next run')).resolves.toBe('next run');
});

test('the profile adds time up by what was running', async () => {
  const before = turnProfile();
  await cpuTurn('inference', () => new Promise((resolve) => setTimeout(resolve, 30)));
  const after = turnProfile();
  expect(after.inference - before.inference).toBeGreaterThanOrEqual(25);
  expect(after.decode).toBe(before.decode);
});
