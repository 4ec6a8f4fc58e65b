/**
 * The workflow alone, in Temporal's time-skipping test environment with mocked activities:
 * waits of minutes take milliseconds, so long bounds are tested at their real length.
 * (The end-to-end suites run the same workflow on a real dev server with real activities.)
 */
import { Context } from '@temporalio/activity';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { PipelineActivities } from '../src/activities';
import type { RunSpec } from '../src/config';
import { ErrorType } from '../src/errors';
import type { BatchRequest, ResumeState } from '../src/workflows/contract';
import { WORKFLOW_BUNDLE } from './support/paths';
import { mockActivities, spec, startTimeSkipping, step, withPipeline } from './support/timeSkipping';

let env: TestWorkflowEnvironment;

beforeAll(async () => {
  env = await startTimeSkipping();
}, 120_000);
afterAll(async () => env?.teardown());

const run = (s: RunSpec, activities: PipelineActivities) => withPipeline(env, WORKFLOW_BUNDLE, s, activities, (handle) => handle.result());

const pending = (message = 'Permission denied while globbing file pattern') =>
  ApplicationFailure.create({ type: ErrorType.IamPropagationPending, message, nonRetryable: false });

test('IAM propagation is waited out for as long as iam.propagationTimeout allows, far beyond ten attempts', async () => {
  let attempts = 0;
  const summary = await run(
    spec({ iam: { propagationTimeout: '20m' } }),
    mockActivities(1, {
      ensureObjectTable: async () => {
        // The server's clock, which the test environment skips: real minutes pass in milliseconds.
        const { scheduledTimestampMs, currentAttemptScheduledTimestampMs } = Context.current().info;
        attempts++;
        if (currentAttemptScheduledTimestampMs - scheduledTimestampMs < 15 * 60_000) throw pending();
        return step('object table');
      },
    }),
  );
  expect(summary.predicted).toBe(1);
  expect(attempts).toBeGreaterThan(10);
});

test('IAM propagation that outlasts iam.propagationTimeout fails with the bound and the time waited', async () => {
  const error = await run(
    spec({ iam: { propagationTimeout: '10m' } }),
    mockActivities(1, {
      ensureObjectTable: async () => {
        throw pending();
      },
    }),
  ).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(WorkflowFailedError);
  const cause = (error as WorkflowFailedError).cause as ApplicationFailure;
  expect(cause.type).toBe(ErrorType.IamPropagationTimeout);
  expect(cause.message).toMatch(
    /^object table: IAM permissions did not propagate within 10m00s \(waited (9|10)m\d\ds; last error: .*Permission denied while globbing file pattern/,
  );
});

test('iam.propagationTimeout run out by other errors fails with the bound and the last error, not a bare timeout', async () => {
  const error = await run(
    spec({ iam: { propagationTimeout: '10m' } }),
    mockActivities(1, {
      ensureObjectTable: async () => {
        throw ApplicationFailure.create({ type: 'Unavailable', message: 'the backend is unavailable (503)', nonRetryable: false });
      },
    }),
  ).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(WorkflowFailedError);
  const cause = (error as WorkflowFailedError).cause as ApplicationFailure;
  expect(cause.type).toBe(ErrorType.IamPropagationTimeout);
  expect(cause.message).toMatch(
    /^object table: did not finish within iam\.propagationTimeout, 10m00s, the bound on steps that read through the connection \(waited (9|10)m\d\ds; last error: the backend is unavailable \(503\)\)/,
  );
});

test('the sliding window never has more than batch.concurrency batches in flight', async () => {
  let inFlight = 0;
  let most = 0;
  const summary = await run(
    spec({ batch: { size: 1, concurrency: 3, heartbeatTimeout: '2s' } }),
    mockActivities(12, {
      predictBatch: async () => {
        most = Math.max(most, ++inFlight);
        await new Promise((r) => setTimeout(r, 30));
        inFlight--;
        return { predicted: 1, failed: 0, labelCounts: { a: 1 } };
      },
    }),
  );
  expect(summary).toMatchObject({ predicted: 12, batches: 12 });
  expect(most).toBe(3);
});

test('a batch whose worker keeps dying is narrowed until the object that kills it stands alone; the rest is predicted', async () => {
  // Eight objects in one batch; object 5 kills whatever worker processes it (it never heartbeats again).
  const objects = [0, 1, 2, 3, 4, 5, 6, 7];
  const inSlice = (request: BatchRequest) => objects.filter((o) => (request.slice.split ?? []).every((bit, level) => ((o >> level) & 1) === bit));
  const setAside: number[][] = [];
  const summary = await run(
    spec({ batch: { size: 8, concurrency: 1, heartbeatTimeout: '1s' } }),
    mockActivities(1, {
      predictBatch: async (_ref, request) => {
        const mine = inSlice(request);
        Context.current().heartbeat({ pending: mine.length });
        if (mine.includes(5)) await Context.current().cancelled; // the worker is gone: no heartbeat, no answer (until this worker stops)
        return { predicted: mine.length, failed: 0, labelCounts: { a: mine.length } };
      },
      recordUnprocessable: async (_ref, request, reason) => {
        setAside.push(inSlice(request));
        expect(reason).toMatch(/stopped the worker \d+ times in a row .* it was set aside\. Check it, then run with --retry-failed/);
        return { predicted: 0, failed: inSlice(request).length, labelCounts: {} };
      },
    }),
  );
  expect(setAside).toEqual([[5]]);
  expect(summary).toMatchObject({ predicted: 7, failed: 1, batches: 1 });
}, 180_000); // heartbeat timeouts pass in real time: 4 levels x 5 attempts x 1s

test('a batch that fails with passing errors past its attempts is tried again after a pause, not failed', async () => {
  let calls = 0;
  const summary = await run(
    spec(),
    mockActivities(1, {
      predictBatch: async () => {
        if (++calls <= 7) throw ApplicationFailure.create({ type: ErrorType.WarehouseBusy, message: 'the warehouse is busy', nonRetryable: false });
        return { predicted: 1, failed: 0, labelCounts: { a: 1 } };
      },
    }),
  );
  expect(summary.predicted).toBe(1);
  expect(calls).toBe(8);
});

test('a cancelled run ends cancelled once its batches have stopped', async () => {
  let stopped = 0;
  const activities = mockActivities(2, {
    predictBatch: async () => {
      const context = Context.current();
      for (;;) {
        context.heartbeat({});
        try {
          await context.sleep(500);
        } catch (error) {
          stopped++;
          throw error;
        }
      }
    },
  });
  const outcome = await withPipeline(env, WORKFLOW_BUNDLE, spec(), activities, async (handle) => {
    while ((await handle.describe()).raw.pendingActivities?.filter((a) => a.activityType?.name === 'predictBatch').length !== 2) await env.sleep(200);
    await handle.cancel();
    return handle.result().catch((e: unknown) => e);
  });
  expect((outcome as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
  expect(stopped).toBe(2);
});

test('a run continued as new resumes at its next batch, carrying what it counted, and provisions nothing again', async () => {
  const started: number[] = [];
  let provisioned = 0;
  const s = spec();
  const resume: ResumeState = {
    startedAt: 0,
    inferStartedAt: 0,
    provisioned: [step('dataset')],
    warnings: [],
    artifact: { ...step('upload model'), version: 'v1', uri: 'file:///m.onnx', filesUploaded: 0, filesSkipped: 1 },
    model: { version: 'v1', inputName: 'in', outputName: 'out', outputNames: ['out'], inputSize: [8, 8], classCount: 2, modelUri: 'file:///m.onnx' },
    plan: { modelVersion: 'v1', objectsSeen: 10, alreadyDone: 0, failedBefore: 0, pending: 10, batchCount: 10 },
    nextBatch: 7,
    predicted: 6,
    failed: 1,
    labelCounts: { a: 6 },
  };
  const activities = mockActivities(10, {
    ensureDataset: async () => {
      provisioned++;
      return step('dataset');
    },
    predictBatch: async (_ref, request) => {
      started.push(request.slice.index);
      return { predicted: 1, failed: 0, labelCounts: { a: 1 } };
    },
  });
  const summary = await withPipeline(env, WORKFLOW_BUNDLE, s, activities, async (handle) => handle.result(), { resume });
  expect(started.sort()).toEqual([7, 8, 9]);
  expect(provisioned).toBe(0);
  expect(summary).toMatchObject({ predicted: 9, failed: 1, batches: 10, labelCounts: { a: 9 } });
});

test('provisioning runs each step as soon as the steps it needs are done, and never before them', async () => {
  const events: string[] = [];
  const firstThree = ['ensureReservation', 'ensureConnection', 'ensureBucket'];
  const startedSteps = new Set<string>();
  let release: () => void = () => undefined;
  const allStarted = new Promise<void>((resolve) => (release = resolve));
  /** The three first steps each wait (heartbeating) until all three have started: run one after another, they never would. */
  const together =
    <T>(name: string, result: T) =>
    async () => {
      events.push(`start ${name}`);
      startedSteps.add(name);
      if (startedSteps.size === firstThree.length) release();
      const beat = setInterval(() => Context.current().heartbeat(), 200);
      try {
        await Promise.race([
          allStarted,
          new Promise((_, fail) => setTimeout(() => fail(ApplicationFailure.create({ message: `${name} ran alone`, nonRetryable: true })), 5_000)),
        ]);
      } finally {
        clearInterval(beat);
      }
      events.push(`end ${name}`);
      return result;
    };
  const traced =
    <A extends unknown[], T>(name: string, work: (...args: A) => Promise<T>) =>
    async (...args: A) => {
      events.push(`start ${name}`);
      const result = await work(...args);
      events.push(`end ${name}`);
      return result;
    };
  const base = mockActivities(1);
  const activities = mockActivities(1, {
    ensureDataset: traced('ensureDataset', async () => step('dataset')),
    ensureReservation: together('ensureReservation', [step('reservation')]),
    ensureConnection: together('ensureConnection', { ...step('connection'), serviceAccount: 'sa@x' }),
    ensureBucket: together('ensureBucket', step('bucket')),
    grantObjectViewer: traced('grantObjectViewer', base.grantObjectViewer),
    uploadModel: traced('uploadModel', base.uploadModel),
    ensureObjectTable: traced('ensureObjectTable', base.ensureObjectTable),
    ensureModel: traced('ensureModel', base.ensureModel),
    describeModel: traced('describeModel', base.describeModel),
    ensureResultTables: traced('ensureResultTables', base.ensureResultTables),
    planBatches: traced('planBatches', base.planBatches),
  });
  const withReservation = spec({ reservation: { name: 'r', slots: 50, edition: 'ENTERPRISE' } });
  const summary = await withPipeline(env, WORKFLOW_BUNDLE, withReservation, activities, async (handle) => handle.result());
  expect(summary.predicted).toBe(1);
  const at = (event: string) => {
    const index = events.indexOf(event);
    expect(index).toBeGreaterThanOrEqual(0);
    return index;
  };
  const after = (step: string, needs: string[]) => needs.forEach((need) => expect(at(`start ${step}`)).toBeGreaterThan(at(`end ${need}`)));
  after('ensureReservation', ['ensureDataset']);
  after('ensureConnection', ['ensureDataset']);
  after('ensureBucket', ['ensureDataset']);
  after('grantObjectViewer', ['ensureConnection', 'ensureBucket']);
  after('uploadModel', ['ensureBucket']);
  after('ensureObjectTable', ['ensureReservation', 'grantObjectViewer']);
  after('ensureModel', ['ensureDataset', 'uploadModel']);
  after('describeModel', ['ensureObjectTable', 'ensureModel']);
  after('ensureResultTables', ['describeModel']);
  after('planBatches', ['ensureResultTables']);
  // The outcomes are listed in the steps' order, whichever ended first.
  expect(summary.provisioned.map((s) => s.step).slice(0, 4)).toEqual(['dataset', 'reservation', 'connection', 'bucket']);
});
