/**
 * The tutorial's procedure against a real Google Cloud project (`npm run test:live`).
 * Needs GOOGLE_CLOUD_PROJECT and Application Default Credentials; scripts/test-live.sh
 * says why and runs nothing when they are missing. It creates a dataset, a connection,
 * a bucket and a model, runs ML.PREDICT over the tutorial's sample images, and removes
 * everything it made. BigQuery charges for the queries and, without a reservation, the
 * project must already have one (see README "Run on Google Cloud").
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { cleanupPipeline, startPipeline, waitForResult } from '../src/client';
import { loadConfig } from '../src/config';
import { writeColorModel } from '../src/demo';
import { testClient, uniqueQueue, withWorker } from '../test/support/pipeline';

const project = process.env.GOOGLE_CLOUD_PROJECT!;

test(
  'the tutorial, end to end, on a real project',
  async () => {
    const { client, connection } = await testClient();
    const suffix = Date.now().toString(36);
    const dir = mkdtempSync(join(tmpdir(), 'objinfer-live-'));
    const model = await writeColorModel(join(dir, 'models'), 224);
    const taskQueue = uniqueQueue('live');
    writeFileSync(
      join(dir, 'gcp.yaml'),
      stringify({
        name: `live-${suffix}`,
        backend: 'gcp',
        project,
        location: process.env.OBJINFER_LIVE_LOCATION ?? 'US',
        dataset: `objinfer_live_${suffix}`,
        connection: `objinfer-live-${suffix}`,
        bucket: `${project}-objinfer-live-${suffix}`.slice(0, 63),
        objectTable: 'vision_images',
        sourceUris: ['gs://cloud-samples-data/vision/*.jpg'],
        model: { name: 'colors', type: 'ONNX', source: model.model, labels: model.labels, inputSize: 224 },
        batch: { size: 50, concurrency: 2 },
        temporal: { taskQueue },
      }),
    );
    const config = loadConfig(join(dir, 'gcp.yaml'));
    try {
      const summary = await withWorker(taskQueue, async () => {
        const { workflowId } = await startPipeline(client, config);
        return waitForResult(client, workflowId);
      });
      expect(summary.objectsSeen).toBeGreaterThan(0);
      expect(summary.predicted + summary.failed).toBe(summary.objectsSeen);
    } finally {
      await withWorker(taskQueue, () => cleanupPipeline(client, config, { deleteData: true }));
      await connection.close();
    }
  },
  60 * 60 * 1000,
);
