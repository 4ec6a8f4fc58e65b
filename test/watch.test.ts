/**
 * How waitForResult watches a run (src/client.ts): progress is a query the worker has to
 * answer, so it is asked only when the run's history has moved since the last answer; each
 * poll in between is a describe, which the server answers alone. A stand-in client plays a run
 * whose history stands still, then grows, then moves to a new run (continue-as-new).
 */
import type { Client } from '@temporalio/client';
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
