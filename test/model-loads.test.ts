/**
 * The model is loaded once per process and content (issue 35, goal 4): `objinfer run` checks
 * it before anything is provisioned, and the worker in the same process then runs the bucket's
 * copy of the same bytes with that one session, through describe and every batch.
 */
import type { Client, Connection } from '@temporalio/client';
import { sessionLoads } from '../src/backends/local/runtime';
import { startPipeline, waitForResult } from '../src/client';
import { checkModelFirst } from '../src/cli/run';
import { makeFixture, testClient, uniqueQueue, withWorker } from './support/pipeline';

let connection: Connection;
let client: Client;

beforeAll(async () => {
  ({ client, connection } = await testClient());
});
afterAll(() => connection.close());

test("the check before provisioning and the worker's describe and batches share one session of the model", async () => {
  const taskQueue = uniqueQueue('loads');
  const fixture = await makeFixture({ labels: ['red', 'green', 'blue'], taskQueue, config: { batch: { size: 1, concurrency: 2 } } });
  const before = sessionLoads();
  expect(await checkModelFirst(fixture.config)).toEqual([]);
  expect(sessionLoads() - before).toBe(1);
  const summary = await withWorker(taskQueue, async () => waitForResult(client, (await startPipeline(client, fixture.config)).workflowId));
  expect(summary).toMatchObject({ predicted: 3, failed: 0 });
  expect(sessionLoads() - before).toBe(1); // the copy in the bucket is the same bytes: not loaded again
});
