/**
 * A gcp pipeline against the gateway (the BigQuery emulator, fake-gcs-server and the
 * schema-checked stand-in): images of chosen colours in a fresh bucket, a config, and a
 * backend factory whose Google clients talk to the gateway.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { OAuth2Client } from 'google-auth-library';
import { stringify } from 'yaml';
import { createGcpBackend } from '../../../src/backends/gcp';
import type { Backend } from '../../../src/backends/port';
import { cleanupPipeline, startPipeline, waitForResult } from '../../../src/client';
import { loadConfig, type RunSpec } from '../../../src/config';
import { writeColorModel } from '../../../src/demo';
import { colorPixels, CORRUPT_JPEG, encodeImage } from '../../../src/demo/images';
import { COLOR_LABELS, type ColorLabel } from '../../../src/models/colorClassifier';
import { uniqueQueue, withWorker } from '../pipeline';
import { startEmulator, type Emulator } from './emulator';
import { startFakeGcs, type FakeGcs } from './fakeGcs';
import { Gateway, type GatewayOptions } from './gateway';
import { ZetaSqlAnalyser } from './zetasql';

export const PROJECT = 'objinfer-test';

export interface GcpWorld {
  emulator: Emulator;
  gcs: FakeGcs;
  analyser: ZetaSqlAnalyser;
  stop(): Promise<void>;
}

/** One emulator and one fake-gcs-server per test file; each fixture gets its own dataset and buckets. */
export async function startWorld(): Promise<GcpWorld> {
  const [emulator, gcs, analyser] = await Promise.all([startEmulator(PROJECT), startFakeGcs(), ZetaSqlAnalyser.start()]);
  return {
    emulator,
    gcs,
    analyser,
    stop: async () => {
      analyser.stop();
      await Promise.all([emulator.stop(), gcs.stop()]);
    },
  };
}

export const staticToken = () => {
  const auth = new OAuth2Client();
  auth.setCredentials({ access_token: 'stand-in-token', expiry_date: Date.now() + 3_600_000 });
  return auth;
};

export interface GcpFixture {
  spec: RunSpec;
  gateway: Gateway;
  imageBucket: string;
  taskQueue: string;
  dataset: string;
  backend(spec?: RunSpec): Backend;
  /** Runs the pipeline on the dev server with a worker whose backends talk to the gateway. */
  run(overrides?: Record<string, unknown>): ReturnType<typeof waitForResult>;
  cleanup(deleteData: boolean): ReturnType<typeof cleanupPipeline>;
  /** Rows of a table of the fixture's dataset, read straight from the emulator. */
  rows<T = Record<string, unknown>>(sql: string): Promise<T[]>;
}

let counter = 0;
const CONTENT_TYPES: Record<string, string> = { jpg: 'image/jpeg', bmp: 'image/bmp', png: 'image/png' };

export interface FixtureOptions {
  labels: ColorLabel[];
  /** Extra objects: name -> bytes (corrupt files, wrong formats). */
  extra?: Record<string, Uint8Array>;
  gateway?: Partial<GatewayOptions>;
  config?: Record<string, unknown>;
}

export async function gcpFixture(world: GcpWorld, client: Client, options: FixtureOptions): Promise<GcpFixture> {
  const id = `${Date.now().toString(36)}${counter++}`;
  const imageBucket = `objinfer-images-${id}`;
  const dataset = `ds_${id}`;
  await world.gcs.createBucket(imageBucket);
  for (const [i, label] of options.labels.entries()) {
    await world.gcs.upload(
      imageBucket,
      `${label}-${String(i).padStart(3, '0')}.png`,
      await encodeImage(colorPixels(label, 20, 20, i), 20, 20, 'png'),
      'image/png',
    );
  }
  for (const [name, bytes] of Object.entries(options.extra ?? {}))
    await world.gcs.upload(imageBucket, name, bytes, CONTENT_TYPES[name.split('.').pop()!] ?? 'image/png');
  const gateway = new Gateway({
    project: PROJECT,
    fakeGcsUrl: world.gcs.url,
    emulator: world.emulator,
    analyser: world.analyser,
    labels: [...COLOR_LABELS],
    existingAssignment: 'default-reservation',
    ...options.gateway,
  });
  await gateway.start();
  const dir = mkdtempSync(join(tmpdir(), 'objinfer-gcp-'));
  const model = await writeColorModel(join(dir, 'models'));
  const taskQueue = uniqueQueue('gcp');
  const raw = {
    name: `gcp-${id}`,
    backend: 'gcp',
    project: PROJECT,
    location: 'US',
    dataset,
    connection: 'lake-connection',
    bucket: `objinfer-models-${id}`,
    objectTable: 'vision_images',
    sourceUris: [`gs://${imageBucket}/*`],
    model: { name: 'resnet', type: 'ONNX', source: model.model, labels: model.labels, inputSize: 32 },
    results: { topK: 3 },
    batch: { size: 4, concurrency: 2, heartbeatTimeout: '10s' },
    temporal: { taskQueue },
    ...options.config,
  };
  const configFile = join(dir, 'gcp.yaml');
  writeFileSync(configFile, stringify(raw));
  const spec = loadConfig(configFile);
  const endpoints = { baseUrl: gateway.url, authClient: staticToken() };
  const backendFor = (s: RunSpec) => createGcpBackend(s, endpoints);
  return {
    spec,
    gateway,
    imageBucket,
    taskQueue,
    dataset,
    backend: (s = spec) => backendFor(s),
    run: (overrides = {}) => {
      const run = Object.keys(overrides).length ? loadConfig(configFile, overrides) : spec;
      return withWorker(
        taskQueue,
        async () => {
          const { workflowId } = await startPipeline(client, run);
          return waitForResult(client, workflowId);
        },
        backendFor,
      );
    },
    cleanup: (deleteData) => withWorker(taskQueue, () => cleanupPipeline(client, spec, { deleteData }), backendFor),
    rows: async <T>(sql: string) => {
      const query = sql.replace(/DATASET\.(\w+)/g, (_m, table: string) => `\`${PROJECT}.${dataset}.${table}\``);
      const [rows] = await world.emulator.direct.query({ query, useLegacySql: false });
      return rows as T[];
    },
  };
}

export { CORRUPT_JPEG };
