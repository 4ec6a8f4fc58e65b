/**
 * The activity wrapper in Temporal's MockActivityEnvironment, with a fake backend: what the
 * workflow's retry policies see of a backend's errors, what heartbeats carry, and how a
 * cancellation reaches a batch. No server: these are the contracts between the layers.
 */
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { BackendRegistry, createActivities } from '../src/activities';
import type { Backend } from '../src/backends/port';
import { reportDoing, reportWaitOver, reportWaiting } from '../src/backends/waiting';
import { specKey } from '../src/config';
import { ErrorType, ObjinferError } from '../src/errors';
import type { BatchProgress, BatchRequest } from '../src/workflows/contract';
import { spec } from './support/timeSkipping';

const pipeline = spec();
const ref = { name: pipeline.name, specKey: specKey(pipeline) };

/** Activities over one fake backend (only the methods a test gives exist). */
function activitiesOver(backend: Partial<Backend>) {
  let made = 0;
  const registry = new BackendRegistry(() => {
    made++;
    return backend as Backend;
  });
  registry.remember(pipeline);
  return { activities: createActivities(registry), made: () => made };
}

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((r) => setTimeout(r, 10));
}

const failureOf = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (e: unknown) => e,
  );

test.each([
  [ErrorType.PermissionDenied, true],
  [ErrorType.ModelShapeMismatch, true],
  [ErrorType.IamPropagationPending, false],
  [ErrorType.WarehouseBusy, false],
])('a backend error of type %s becomes an ApplicationFailure of that type (non-retryable: %s)', async (type, nonRetryable) => {
  const { activities } = activitiesOver({
    ensureDataset: async () => {
      throw new ObjinferError(type, `the ${type} message`);
    },
  });
  const error = await failureOf(new MockActivityEnvironment().run(activities.ensureDataset, ref));
  expect(error).toBeInstanceOf(ApplicationFailure);
  expect(error).toMatchObject({ type, message: `the ${type} message`, nonRetryable });
});

test("an error that is not objinfer's passes through as it is (Temporal retries it)", async () => {
  const boom = new TypeError('a bug');
  const { activities } = activitiesOver({ ensureBucket: async () => Promise.reject(boom) });
  expect(await failureOf(new MockActivityEnvironment().run(activities.ensureBucket, ref))).toBe(boom);
});

test('one backend per pipeline spec, made once for every step and batch', async () => {
  const { activities, made } = activitiesOver({
    ensureDataset: async () => ({ step: 'dataset', action: 'exists', detail: 'd' }),
    ensureBucket: async () => ({ step: 'bucket', action: 'exists', detail: 'b' }),
  });
  const env = new MockActivityEnvironment();
  await env.run(activities.ensureDataset, ref);
  await env.run(activities.ensureBucket, ref);
  expect(made()).toBe(1);
});

test('a batch heartbeats at once, then its progress, and repeats the last details while the backend is quiet', async () => {
  let finish!: () => void;
  const { activities } = activitiesOver({
    predictBatch: async (_request, onProgress) => {
      onProgress?.({ pending: 4, imagesDone: 2, jobId: 'job-1' });
      await new Promise<void>((resolve) => (finish = resolve));
      return { predicted: 4, failed: 0, labelCounts: { a: 4 } };
    },
  });
  const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 300 });
  const beats: BatchProgress[] = [];
  env.on('heartbeat', (details: BatchProgress) => beats.push(details));
  const result = env.run(activities.predictBatch, ref, {} as BatchRequest);
  await until(() => beats.length >= 4);
  finish();
  expect(await result).toEqual({ predicted: 4, failed: 0, labelCounts: { a: 4 } });
  expect(beats[0]).toEqual({ imagesDone: 0 });
  // The repeats keep the job ID: a retry on another worker reads it to re-attach.
  expect(beats.slice(1)).toEqual(new Array(beats.length - 1).fill({ pending: 4, imagesDone: 2, jobId: 'job-1' }));
});

test('why a step waits reaches its heartbeat', async () => {
  let finish!: () => void;
  const { activities } = activitiesOver({
    ensureObjectTable: async () => {
      reportWaiting('the warehouse is held by pid 4242');
      await new Promise<void>((resolve) => (finish = resolve));
      return { step: 'object table', action: 'exists', detail: 't' };
    },
  });
  const env = new MockActivityEnvironment();
  const beats: BatchProgress[] = [];
  env.on('heartbeat', (details: BatchProgress) => beats.push(details));
  const result = env.run(activities.ensureObjectTable, ref);
  await until(() => beats.length >= 1);
  finish();
  await result;
  expect(beats).toContainEqual({ waiting: 'the warehouse is held by pid 4242' });
});

test('a wait that is over leaves the heartbeat: a watcher does not keep showing it', async () => {
  let waited!: () => void;
  let finish!: () => void;
  const { activities } = activitiesOver({
    ensureObjectTable: async () => {
      reportDoing('listing: 10 files matched so far');
      reportWaiting('the warehouse is held by pid 4242');
      await new Promise<void>((resolve) => (waited = resolve));
      reportWaitOver();
      await new Promise<void>((resolve) => (finish = resolve));
      return { step: 'object table', action: 'exists', detail: 't' };
    },
  });
  const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 300 });
  const beats: BatchProgress[] = [];
  env.on('heartbeat', (details: BatchProgress) => beats.push(details));
  const result = env.run(activities.ensureObjectTable, ref);
  await until(() => beats.length >= 2);
  expect(beats.at(-1)).toEqual({ waiting: 'the warehouse is held by pid 4242' });
  waited();
  const over = beats.length;
  await until(() => beats.length >= over + 2); // the news, then a repeat of the last details
  finish();
  await result;
  expect(beats.slice(over)).toEqual(new Array(beats.length - over).fill({}));
});

test('a cancelled batch: the backend sees the signal abort, and the activity ends cancelled', async () => {
  let signalSeen: AbortSignal | undefined;
  const { activities } = activitiesOver({
    predictBatch: async (_request, _onProgress, signal) => {
      signalSeen = signal;
      await new Promise((_resolve, reject) => signal!.addEventListener('abort', () => reject(signal!.reason)));
      throw new Error('unreachable');
    },
  });
  const env = new MockActivityEnvironment();
  const result = failureOf(env.run(activities.predictBatch, ref, {} as BatchRequest));
  await until(() => signalSeen !== undefined);
  env.cancel();
  expect(await result).toBeInstanceOf(CancelledFailure);
  expect(signalSeen!.aborted).toBe(true);
});

test('a failure message longer than history should hold is cut, saying where the rest is; its type and retryability stay', async () => {
  const long = `sourceUris: ${'*'.repeat(100_000)}`;
  const { activities } = activitiesOver({
    ensureDataset: async () => {
      throw new ObjinferError(ErrorType.InvalidConfig, long);
    },
    ensureBucket: async () => {
      throw new Error(long);
    },
  });
  const typed = (await failureOf(new MockActivityEnvironment().run(activities.ensureDataset, ref))) as ApplicationFailure;
  expect(typed).toBeInstanceOf(ApplicationFailure);
  expect(typed).toMatchObject({ type: ErrorType.InvalidConfig, nonRetryable: true });
  expect(typed.message).toBe(`${long.slice(0, 2000)}… (${long.length - 2000} more characters in the worker's log)`);
  const plain = (await failureOf(new MockActivityEnvironment().run(activities.ensureBucket, ref))) as ApplicationFailure;
  expect(plain).toMatchObject({ type: 'Error', nonRetryable: false });
  expect(plain.message.length).toBeLessThan(2100);
});
