/**
 * How waitForResult watches a run (src/client.ts): progress is a query the worker has to
 * answer, so it is asked only when the run's history has moved since the last answer; each
 * poll in between is a describe, which the server answers alone. A stand-in client plays a run
 * whose history stands still, then grows, then moves to a new run (continue-as-new).
 */
import type { Client } from '@temporalio/client';
import { ProgressView } from '../src/cli/progress';
import { waitForResult } from '../src/client';
import type { PipelineProgress, PipelineSummary } from '../src/workflows/contract';

interface Step {
  runId: string;
  historyLength: number;
}

/** A client whose run goes through `steps`, one per describe, and finishes after the last. */
function scriptedClient(steps: Step[]) {
  const calls = { describe: 0, query: 0 };
  let finish: (summary: PipelineSummary) => void = () => undefined;
  const result = new Promise<PipelineSummary>((done) => (finish = done));
  const current = () => steps[Math.max(0, Math.min(calls.describe, steps.length) - 1)]!;
  const handle = {
    describe: async () => {
      calls.describe++;
      if (calls.describe >= steps.length) setTimeout(() => finish({ predicted: 3 } as PipelineSummary), 20);
      return { ...current(), raw: { pendingActivities: [] } };
    },
    query: async (): Promise<Partial<PipelineProgress>> => {
      calls.query++;
      return { stage: 'infer', imagesDone: current().historyLength };
    },
    result: () => result,
  };
  const client = {
    workflow: { getHandle: () => handle },
    withAbortSignal: <T>(_signal: AbortSignal, fn: () => Promise<T>) => fn(),
  } as unknown as Client;
  return { client, calls };
}

test('progress is queried once per change of the run history, not on every poll', async () => {
  const steps: Step[] = [
    ...Array.from({ length: 8 }, () => ({ runId: 'a', historyLength: 11 })),
    ...Array.from({ length: 8 }, () => ({ runId: 'a', historyLength: 17 })),
    ...Array.from({ length: 8 }, () => ({ runId: 'b', historyLength: 17 })),
  ];
  const { client, calls } = scriptedClient(steps);
  const seen: (number | undefined)[] = [];
  const summary = await waitForResult(client, 'objinfer-pipeline-x', { onProgress: (p) => seen.push(p.imagesDone), onWaiting: () => undefined, intervalMs: 1 });
  expect(summary).toEqual({ predicted: 3 });
  expect(calls.describe).toBeGreaterThanOrEqual(steps.length);
  expect(calls.query).toBe(3);
  expect(seen).toEqual([11, 17, 17]);
});

test('a log shows what a long step is doing after the progress line, why the run waits in its place while it does, and drops it at the next stage', () => {
  const lines: string[] = [];
  const stream = { isTTY: false, write: (text: string) => lines.push(text) } as unknown as NodeJS.WriteStream;
  const view = new ProgressView(stream);
  view.update({ stage: 'provision', batchesDone: 0, batchesTotal: 0, imagesDone: 0, imagesTotal: 0, imagesFailed: 0 } as PipelineProgress);
  view.doing('ensureObjectTable: listing: 20,000 files matched so far');
  view.waiting('ensureObjectTable: the warehouse is locked by another process; waiting for it');
  view.waiting(undefined);
  view.doing(undefined);
  view.doing('ensureObjectTable: writing 20,000 listed objects into bench.images');
  // The next stage's line does not repeat what a step of the stage before said (polls come every few seconds).
  view.update({ stage: 'plan', batchesDone: 0, batchesTotal: 0, imagesDone: 0, imagesTotal: 0, imagesFailed: 0 } as PipelineProgress);
  expect(lines).toEqual([
    'provision...\n',
    'provision... (ensureObjectTable: listing: 20,000 files matched so far)\n',
    'provision... (waiting: ensureObjectTable: the warehouse is locked by another process; waiting for it)\n',
    'provision... (ensureObjectTable: listing: 20,000 files matched so far)\n',
    'provision...\n',
    'provision... (ensureObjectTable: writing 20,000 listed objects into bench.images)\n',
    'plan...\n',
  ]);
});
