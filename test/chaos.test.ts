/**
 * The short chaos run (the long one is `make chaos`): a few SIGKILLs of the worker
 * process and one of the Temporal dev server, with image bombs and an image too big for the
 * decoders' memory cap among the images, then exactly-once checks on the tables.
 */
import { runChaos } from './chaos/chaos';

test('worker and dev server killed mid-run: every image has one result or one error row, and the summary agrees', async () => {
  const lines: string[] = [];
  // Decoders capped at 200 MB; two image bombs and one image too big for the cap among the 80.
  const report = await runChaos({
    images: 80,
    kills: 4,
    killServer: true,
    timeLimitMs: 240_000,
    seed: 7,
    decoderMemoryMb: 200,
    log: (line) => lines.push(line),
  });
  expect(report.rounds.flatMap((r) => r.problems)).toEqual([]);
  for (const round of report.rounds) expect(round.tally).toEqual({ rowsLost: 0, rowsDuplicated: 0, poisonIsolated: 3, decoderOoms: 1 });
  expect(report.kills).toBeGreaterThanOrEqual(4);
  expect(report.serverKills).toBe(1);
  for (const round of report.rounds) expect(round.summary).toMatchObject({ objectsSeen: 83, predicted: 79, failed: 4 });
}, 300_000);
