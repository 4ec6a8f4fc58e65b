/**
 * The Temporal UI as a person sees it (headless Debian chromium driven by playwright-core):
 * a run is found by its search attribute, and its page shows its stage and summary.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Client, Connection } from '@temporalio/client';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startPipeline, waitForResult, type PipelineSummary } from '../src/client';
import { PROJECT_ROOT } from './support/paths';
import { makeFixture, testClient, testServer, uniqueQueue, withWorker } from './support/pipeline';

const SCREENSHOTS = join(PROJECT_ROOT, 'test-output', 'ui');
let client: Client;
let connection: Connection;
let browser: Browser;

beforeAll(async () => {
  ({ client, connection } = await testClient());
  mkdirSync(SCREENSHOTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});
afterAll(async () => {
  await browser?.close();
  await connection.close();
});

test('the UI lists the run under its search attribute and its page shows the stage and summary', async () => {
  const taskQueue = uniqueQueue('ui');
  const model = `ui_model_${taskQueue.slice(-8)}`;
  const fixture = await makeFixture({
    labels: ['red', 'green', 'blue'],
    taskQueue,
    config: { model: { name: model, source: 'models/color-classifier.onnx', labels: 'models/color-classifier.labels.txt' } },
  });
  const summary = await withWorker(taskQueue, async () => {
    const { workflowId } = await startPipeline(client, fixture.config, { searchAttributes: true });
    return waitForResult(client, workflowId);
  });
  await lookAtTheRun(summary, fixture.config.name, model);
}, 120_000);

async function textOfAllFrames(page: Page, waitingFor: string): Promise<string> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const texts = await Promise.all(
      page.frames().map((frame) =>
        frame
          .locator('body')
          .innerText()
          .catch(() => ''),
      ),
    );
    const text = texts.join('\n');
    if (text.includes(waitingFor) || Date.now() > deadline) return text;
    await page.waitForTimeout(250);
  }
}

async function lookAtTheRun(summary: PipelineSummary, pipeline: string, model: string): Promise<void> {
  const { uiUrl } = testServer();
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });

  const query = encodeURIComponent(`ObjinferModel="${model}"`);
  await page.goto(`${uiUrl}/namespaces/default/workflows?query=${query}`);
  await page.getByText(summary.workflowId).first().waitFor({ timeout: 30_000 });
  await page.screenshot({ path: join(SCREENSHOTS, 'runs-by-search-attribute.png'), fullPage: true });
  expect(await page.locator('body').innerText()).toMatch(/\b1\s+Workflow\b/); // the filter found this run only

  const runPage = `${uiUrl}/namespaces/default/workflows/${summary.workflowId}`;
  await page.goto(runPage);
  await page.getByText('predictBatch • infer: batch 1/1').first().waitFor({ timeout: 30_000 }); // activity summary on the timeline
  const overview = await page.locator('body').innerText();
  expect(overview).toMatch(/COMPLETED/i);
  expect(overview).toMatch(/"predicted": 3,/); // the run's summary, in the result panel
  await page.screenshot({ path: join(SCREENSHOTS, 'run-timeline.png'), fullPage: true });

  await page.getByText('User Metadata', { exact: true }).first().click();
  await page.getByText('Details', { exact: true }).first().waitFor({ timeout: 30_000 });
  // The UI renders markdown (summary, details) in sandboxed frames: read every frame.
  const metadata = await textOfAllFrames(page, `objinfer ${pipeline}`);
  await page.screenshot({ path: join(SCREENSHOTS, 'run-user-metadata.png'), fullPage: true });
  expect(metadata).toContain(`objinfer ${pipeline}: ${model} over file://`); // static summary
  expect(metadata).toContain(`model: ${model} (ONNX)`); // static details: the config summary

  await page.getByText('Search Attributes', { exact: true }).first().click();
  await page.getByText('ObjinferStage').first().waitFor({ timeout: 30_000 });
  const attributes = await page.locator('body').innerText();
  await page.screenshot({ path: join(SCREENSHOTS, 'run-search-attributes.png'), fullPage: true });
  expect(attributes).toMatch(/ObjinferStage[\s\S]{0,40}done/);
  expect(attributes).toMatch(/ObjinferImagesDone[\s\S]{0,40}3/);
  await page.close();
}
