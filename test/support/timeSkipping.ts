/**
 * The workflow alone in Temporal's time-skipping test server, with mocked activities: used by
 * test/workflow.test.ts and by test/fixtures/histories/record.ts, which records the histories
 * the replay test (test/replay.test.ts) replays.
 */
import { join } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import type { PipelineActivities } from '../../src/activities';
import { parseConfig, specKey, type RunSpec } from '../../src/config';
import { inferencePipeline } from '../../src/workflows';
import type { ModelArtifact, ModelDescription, PipelineInput, StepOutcome } from '../../src/workflows/contract';
import { PROJECT_ROOT } from './paths';

/** Installed by scripts/setup-test-server.sh (`make test` runs it). */
export const TEST_SERVER = join(PROJECT_ROOT, '.objinfer', 'tools', 'temporal-test-server', 'temporal-test-server');

export async function startTimeSkipping(): Promise<TestWorkflowEnvironment> {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  return TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: TEST_SERVER } } });
}

export const spec = (overrides: Record<string, unknown> = {}): RunSpec =>
  parseConfig(
    {
      name: 'wf',
      dataset: 'd',
      bucket: 'b-models',
      objectTable: 't',
      sourceUris: ['/tmp/*.png'],
      model: { name: 'm', source: '/tmp/none.onnx' },
      batch: { size: 1, concurrency: 2, heartbeatTimeout: '2s' },
      ...overrides,
    },
    '/tmp',
    { checkFiles: false },
  );

export const step = (name: string): StepOutcome => ({ step: name, action: 'exists', detail: name });
const artifact: ModelArtifact = { ...step('upload model'), version: 'v1', uri: 'file:///m.onnx', filesUploaded: 0, filesSkipped: 1 };
const model: ModelDescription = {
  version: 'v1',
  inputName: 'in',
  outputName: 'out',
  outputNames: ['out'],
  inputSize: [8, 8],
  classCount: 2,
  modelUri: 'file:///m.onnx',
};

/** Activities that succeed at once, with `pending` objects one per batch; a test replaces the ones it is about. */
export function mockActivities(pending: number, overrides: Partial<PipelineActivities> = {}): PipelineActivities {
  const ok = async () => step('ok');
  return {
    preflight: async () => ({ warnings: [] }),
    ensureDataset: ok,
    ensureReservation: async () => [],
    ensureConnection: async () => ({ ...step('connection'), serviceAccount: 'sa@x' }),
    ensureBucket: ok,
    grantObjectViewer: async () => [],
    uploadModel: async () => artifact,
    ensureObjectTable: ok,
    ensureModel: ok,
    describeModel: async () => model,
    ensureResultTables: async () => [],
    planBatches: async (_ref, version) => ({ modelVersion: version, objectsSeen: pending, alreadyDone: 0, failedBefore: 0, pending, batchCount: pending }),
    predictBatch: async () => ({ predicted: 1, failed: 0, labelCounts: { a: 1 } }),
    recordUnprocessable: async () => ({ predicted: 0, failed: 1, labelCounts: {} }),
    cleanup: async () => [],
    ...overrides,
  } as PipelineActivities;
}

let queue = 0;

/**
 * Starts the pipeline for `s` on a fresh task queue with a worker running `activities`, and
 * gives `drive` its handle (to wait, cancel or read history) while the worker runs.
 */
export async function withPipeline<T>(
  env: TestWorkflowEnvironment,
  workflowBundle: string,
  s: RunSpec,
  activities: PipelineActivities,
  drive: (handle: WorkflowHandle<typeof inferencePipeline>) => Promise<T>,
  extra: Pick<PipelineInput, 'resume'> = {},
): Promise<T> {
  const taskQueue = `wf-${process.pid}-${queue++}`;
  const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: { codePath: workflowBundle }, activities });
  const input: PipelineInput = { spec: { ...s, temporal: { taskQueue } }, specKey: specKey(s), ...extra };
  return worker.runUntil(async () => drive(await env.client.workflow.start(inferencePipeline, { taskQueue, workflowId: taskQueue, args: [input] })));
}
