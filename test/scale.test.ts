/**
 * Scale: 10 000 objects through a worker process. The run completes, every object gets
 * one row, the worker's memory stays bounded, and the test server's low continue-as-new
 * threshold keeps every run's history small.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client, Connection } from '@temporalio/client';
import sharp from 'sharp';
import { peakRssMiB } from '../bench/support';
import { startPipeline, waitForResult } from '../src/client';
import { COLOR_LABELS, COLOR_PROTOTYPES } from '../src/models/colorClassifier';
import { CLI, SUGGEST_CONTINUE_AS_NEW_AFTER_EVENTS } from './support/paths';
import { makeFixture, query, testClient, testServer, uniqueQueue } from './support/pipeline';

const OBJECTS = 10_000;
/** Generous: the worker idles at about 250 MiB (Node, ONNX Runtime, DuckDB, Temporal core). */
const WORKER_PEAK_RSS_LIMIT_MIB = 700;

let client: Client;
let connection: Connection;
let worker: ChildProcess | undefined;
beforeAll(async () => ({ client, connection } = await testClient()));
afterAll(async () => {
  worker?.kill('SIGKILL');
  await connection.close();
});

test(`${OBJECTS} objects: one row each, bounded worker memory, small histories (continue-as-new)`, async () => {
  const taskQueue = uniqueQueue('scale');
  const fixture = await makeFixture({ labels: [], taskQueue, config: { batch: { size: 100, concurrency: 4, heartbeatTimeout: '10s' } } });
  const pngs = await Promise.all(
    COLOR_LABELS.map((label) => {
      const [r, g, b] = COLOR_PROTOTYPES[label].map((c) => c * 215 + 20);
      return sharp({ create: { width: 4, height: 4, channels: 3, background: { r: r!, g: g!, b: b! } } })
        .png()
        .toBuffer();
    }),
  );
  for (let i = 0; i < OBJECTS; i++) writeFileSync(join(fixture.imagesDir, `${COLOR_LABELS[i % 8]}-${i}.png`), pngs[i % 8]!);

  worker = spawn(CLI, ['worker', '--task-queue', taskQueue], {
    env: { ...process.env, TEMPORAL_ADDRESS: testServer().address, OBJINFER_HOME: join(fixture.dir, 'state') },
    stdio: 'ignore',
  });
  const { workflowId } = await startPipeline(client, fixture.config);
  const summary = await waitForResult(client, workflowId);
  const peak = peakRssMiB(worker.pid!);
  console.log(`scale: ${OBJECTS} objects, worker peak RSS ${peak.toFixed(0)} MiB`);

  expect(summary).toMatchObject({ objectsSeen: OBJECTS, predicted: OBJECTS, failed: 0, batches: OBJECTS / 100 });
  const [counts] = await query<{ rows: bigint; uris: bigint; wrong: bigint }>(
    fixture.config,
    `SELECT count(*) AS rows, count(DISTINCT uri) AS uris, count(*) FILTER (WHERE NOT starts_with(parse_filename(uri), label || '-')) AS wrong FROM objinfer_test.predictions`,
  );
  expect(counts).toEqual({ rows: BigInt(OBJECTS), uris: BigInt(OBJECTS), wrong: 0n });
  expect(peak).toBeLessThan(WORKER_PEAK_RSS_LIMIT_MIB);

  const runs: { historyLength: number; historySize?: number; status: string }[] = [];
  for await (const run of client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) {
    const described = await client.workflow.getHandle(workflowId, run.runId).describe();
    runs.push({ historyLength: described.historyLength, historySize: described.historySize, status: described.status.name });
  }
  expect(runs.length).toBeGreaterThan(2);
  expect(runs.filter((r) => r.status === 'CONTINUED_AS_NEW')).toHaveLength(runs.length - 1);
  for (const run of runs) {
    // The server suggests continuing at the threshold; a run drains its in-flight batches first.
    expect(run.historyLength).toBeLessThan(SUGGEST_CONTINUE_AS_NEW_AFTER_EVENTS + 100);
    expect(run.historySize).toBeGreaterThan(0);
    expect(run.historySize).toBeLessThan(512 * 1024);
  }
}, 240_000);
