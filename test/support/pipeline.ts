/** Helpers for tests that run the real pipeline on the real dev server. */
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { NativeConnection, Runtime, DefaultLogger, Worker } from '@temporalio/worker';
import { stringify } from 'yaml';
import { BackendRegistry, createActivities } from '../../src/activities';
import { createBackend } from '../../src/backends';
import type { BackendFactory } from '../../src/backends/port';
import { Warehouse, type Row } from '../../src/backends/local/warehouse';
import { startPipeline, waitForResult } from '../../src/client';
import { loadConfig, type RunSpec } from '../../src/config';
import { writeColorModel } from '../../src/demo';
import { CORRUPT_JPEG, writeColorImage, type DemoFormat } from '../../src/demo/images';
import type { ColorLabel } from '../../src/models/colorClassifier';
import { SERVER_FILE, WORKFLOW_BUNDLE, type TestServer } from './paths';

let runtimeInstalled = false;
/** Every log line the in-process workers wrote (INFO and up), for tests that check what logs hold. */
export const capturedLogs: string[] = [];

export function testServer(): TestServer {
  return JSON.parse(readFileSync(SERVER_FILE, 'utf8')) as TestServer;
}

export async function testClient(): Promise<{ client: Client; connection: Connection }> {
  const connection = await Connection.connect({ address: testServer().address });
  return { client: new Client({ connection }), connection };
}

export function uniqueQueue(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

/** Runs `work` while an in-process worker polls `taskQueue`. */
export async function withWorker<T>(taskQueue: string, work: () => Promise<T>, backendFor: BackendFactory = createBackend): Promise<T> {
  if (!runtimeInstalled) {
    // Tests fail activities on purpose; their WARN logs would bury real failures.
    const shown = process.env.OBJINFER_TEST_LOG === 'warn' ? ['WARN', 'ERROR'] : ['ERROR'];
    Runtime.install({
      logger: new DefaultLogger('INFO', (entry) => {
        const line = `${entry.level} ${entry.message} ${JSON.stringify(entry.meta ?? {}, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}`;
        if (capturedLogs.length < 100_000) capturedLogs.push(line);
        if (shown.includes(entry.level)) console.error(line);
      }),
    });
    runtimeInstalled = true;
  }
  const connection = await NativeConnection.connect({ address: testServer().address });
  try {
    const worker = await Worker.create({
      connection,
      taskQueue,
      workflowBundle: { codePath: WORKFLOW_BUNDLE },
      activities: createActivities(new BackendRegistry(backendFor)),
    });
    return await worker.runUntil(work());
  } finally {
    await connection.close();
  }
}

export interface Fixture {
  dir: string;
  imagesDir: string;
  configFile: string;
  config: RunSpec;
  /** Writes one more image of the given colour and returns its file:// URI. */
  addImage(label: ColorLabel, format?: DemoFormat): Promise<string>;
}

let nextImageId = 1000;

/** A temp folder with the colour model, generated images, and a config for them. */
export async function makeFixture(options: { labels: ColorLabel[]; corrupt?: boolean; taskQueue: string; config?: Record<string, unknown> }): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), 'objinfer-test-'));
  const imagesDir = join(dir, 'images');
  mkdirSync(imagesDir);
  await writeColorModel(join(dir, 'models'));
  let id = 0;
  for (const label of options.labels) await writeColorImage(imagesDir, label, id++);
  if (options.corrupt) writeFileSync(join(imagesDir, 'broken.jpg'), CORRUPT_JPEG);
  const raw = {
    name: `test-${randomUUID().slice(0, 8)}`,
    dataset: 'objinfer_test',
    bucket: 'objinfer-test-models',
    objectTable: 'images',
    sourceUris: ['images/*'],
    model: { name: 'color_classifier', source: 'models/color-classifier.onnx', labels: 'models/color-classifier.labels.txt' },
    batch: { size: 4, concurrency: 2, heartbeatTimeout: '5s' },
    local: { warehouse: 'warehouse.duckdb', storage: 'storage' },
    temporal: { taskQueue: options.taskQueue },
    ...options.config,
  };
  const configFile = join(dir, 'objinfer.yaml');
  writeFileSync(configFile, stringify(raw));
  return {
    dir,
    imagesDir,
    configFile,
    config: loadConfig(configFile),
    addImage: async (label, format) => `file://${await writeColorImage(imagesDir, label, nextImageId++, format)}`,
  };
}

export async function query<T extends Row = Row>(config: RunSpec, sql: string): Promise<T[]> {
  return new Warehouse(config.local.warehouse, { readOnly: true }).use((db) => db.all<T>(sql));
}

export interface AttemptRecord {
  activityType: string;
  attempt: number;
  lastFailureType?: string;
  lastFailureMessage?: string;
}

/**
 * Everything a run's history holds as text, over all of its runs (continue-as-new):
 * each payload decoded, failure messages and stack traces included.
 */
export async function historyText(client: Client, workflowId: string): Promise<{ text: string; payloadBytes: number }> {
  const parts: string[] = [];
  let payloadBytes = 0;
  const visit = (value: unknown): void => {
    if (value instanceof Uint8Array) {
      payloadBytes += value.length;
      parts.push(Buffer.from(value).toString('utf8'));
    } else if (Array.isArray(value)) value.forEach(visit);
    else if (value && typeof value === 'object') Object.values(value).forEach(visit);
    else if (typeof value === 'string') parts.push(value);
  };
  for await (const run of client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) {
    visit((await client.workflow.getHandle(workflowId, run.runId).fetchHistory()).events);
  }
  return { text: parts.join('\n'), payloadBytes };
}

/** Every activity start in the run's history, with its attempt and the failure before it. */
export async function activityStarts(client: Client, workflowId: string, runId?: string): Promise<AttemptRecord[]> {
  const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
  const scheduled = new Map<string, string>();
  const starts: AttemptRecord[] = [];
  for (const event of history.events ?? []) {
    if (event.activityTaskScheduledEventAttributes) {
      scheduled.set(String(event.eventId), event.activityTaskScheduledEventAttributes.activityType?.name ?? '');
    }
    const started = event.activityTaskStartedEventAttributes;
    if (started) {
      starts.push({
        activityType: scheduled.get(String(started.scheduledEventId)) ?? '',
        attempt: started.attempt ?? 1,
        lastFailureType: started.lastFailure?.applicationFailureInfo?.type ?? undefined,
        lastFailureMessage: started.lastFailure?.message ?? undefined,
      });
    }
  }
  return starts;
}

/** Runs the pipeline to its end with an in-process worker; returns its summary. */
export async function runToEnd(client: Client, taskQueue: string, config: RunSpec, backendFor?: BackendFactory) {
  return withWorker(taskQueue, async () => waitForResult(client, (await startPipeline(client, config)).workflowId), backendFor);
}

/** Runs the pipeline, which must fail; returns the innermost cause (the activity's failure, with its type). */
export async function failureOfRun(
  client: Client,
  taskQueue: string,
  config: RunSpec,
  backendFor?: BackendFactory,
): Promise<{ type?: string; message: string }> {
  const error = await withWorker(
    taskQueue,
    async () =>
      waitForResult(client, (await startPipeline(client, config)).workflowId).then(
        () => new Error('the run succeeded'),
        (e: unknown) => e,
      ),
    backendFor,
  );
  if (!(error instanceof WorkflowFailedError)) throw error;
  let cause: Error | undefined = error.cause;
  while (cause?.cause instanceof Error) cause = cause.cause;
  return cause as { type?: string; message: string };
}

/** The innermost cause of a run that must have failed. */
export async function failureOf(promise: Promise<unknown>): Promise<Error & { type?: string }> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(WorkflowFailedError);
  let cause = (error as WorkflowFailedError).cause as (Error & { type?: string; cause?: unknown }) | undefined;
  while (cause?.cause) cause = cause.cause as typeof cause;
  return cause!;
}
