/**
 * The short chaos run (the long one is `make chaos`): a few SIGKILLs of the worker
 * process and one of the Temporal dev server, then exactly-once checks on the tables.
 */
import { runChaos } from './chaos/chaos';

test('worker and dev server killed mid-run: every image has one result or one error row, and the summary agrees', async () => {
  const lines: string[] = [];
  const report = await runChaos({ images: 80, kills: 4, killServer: true, timeLimitMs: 240_000, seed: 7, log: (line) => lines.push(line) });
  expect(report.rounds.flatMap((r) => r.problems)).toEqual([]);
  expect(report.kills).toBeGreaterThanOrEqual(4);
  expect(report.serverKills).toBe(1);
  for (const round of report.rounds) expect(round.summary).toMatchObject({ objectsSeen: 80, predicted: 79, failed: 1 });
}, 300_000);
