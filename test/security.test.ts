/**
 * What workflow history and logs may hold: counts, names of tables and steps, never
 * image bytes or object names (DESIGN §3: no URI lists, no pixels in history).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client, Connection } from '@temporalio/client';
import { startPipeline, waitForResult } from '../src/client';
import { capturedLogs, historyText, makeFixture, testClient, uniqueQueue, withWorker } from './support/pipeline';

let client: Client;
let connection: Connection;
beforeAll(async () => ({ client, connection } = await testClient()));
afterAll(() => connection.close());

test('history and logs hold no image bytes and no object names; payloads stay small', async () => {
  const taskQueue = uniqueQueue('security');
  const fixture = await makeFixture({
    labels: ['red', 'green', 'blue', 'white', 'black', 'cyan'],
    corrupt: true,
    taskQueue,
    config: { batch: { size: 2, concurrency: 2 } },
  });
  const logsBefore = capturedLogs.length;
  const summary = await withWorker(taskQueue, async () => waitForResult(client, (await startPipeline(client, fixture.config)).workflowId));
  expect(summary).toMatchObject({ predicted: 6, failed: 1 });

  const { text, payloadBytes } = await historyText(client, summary.workflowId);
  const logs = capturedLogs.slice(logsBefore).join('\n');
  expect(text.length).toBeGreaterThan(0);
  expect(logs.length).toBeGreaterThan(0);
  for (const name of readdirSync(fixture.imagesDir)) {
    const bytes = readFileSync(join(fixture.imagesDir, name));
    const sample = bytes.subarray(0, 24);
    for (const [where, haystack] of [
      ['history', text],
      ['logs', logs],
    ] as const) {
      expect(`${where}: ${haystack.includes(name)}`).toBe(`${where}: false`);
      expect(`${where}: ${haystack.includes(sample.toString('base64'))}`).toBe(`${where}: false`);
      expect(`${where}: ${haystack.includes(sample.toString('latin1'))}`).toBe(`${where}: false`);
    }
  }
  expect(payloadBytes).toBeLessThan(64 * 1024);
});
