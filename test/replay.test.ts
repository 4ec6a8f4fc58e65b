/**
 * Determinism: histories recorded from earlier runs (test/fixtures/histories, see record.ts
 * there) replay against today's workflow code. A change that would make a running workflow
 * take a different path on replay fails here; version it with `patched()` instead.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { temporal } from '@temporalio/proto';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { WORKFLOW_BUNDLE } from './support/paths';

const DIR = join(__dirname, 'fixtures', 'histories');
const histories = readdirSync(DIR).filter((f) => f.endsWith('.binpb'));

// The last test fails a replay on purpose; the SDK core would log that as a WARN with "Nondeterminism error".
beforeAll(() => Runtime.install({ logger: new DefaultLogger('ERROR'), telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' } } } }));

const load = (file: string) => temporal.api.history.v1.History.decode(readFileSync(join(DIR, file)));

test('there are recorded histories to replay', () => {
  expect(histories.sort()).toEqual([
    'cancelled.binpb',
    'iam-wait-and-window.binpb',
    'narrowed-around-a-killer.binpb',
    'paused-resized-resumed.binpb',
    'provisioned-in-parallel.binpb',
    'retried-after-a-pause.binpb',
    'watched.binpb',
  ]);
});

test.each(histories)('%s replays against the current workflow code', async (file) => {
  await Worker.runReplayHistory({ workflowBundle: { codePath: WORKFLOW_BUNDLE } }, load(file), file);
});

test('a history the code would not produce is caught (the replay check can fail)', async () => {
  const history = load('iam-wait-and-window.binpb');
  // The history says the first step was another activity than the one the code schedules.
  const first = history.events.find((e) => e.activityTaskScheduledEventAttributes)!;
  first.activityTaskScheduledEventAttributes!.activityType!.name = 'notAStepOfThisWorkflow';
  await expect(Worker.runReplayHistory({ workflowBundle: { codePath: WORKFLOW_BUNDLE } }, history, 'tampered')).rejects.toBeInstanceOf(
    DeterminismViolationError,
  );
});
