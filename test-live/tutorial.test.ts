/**
 * The tutorial's procedure against a real Google Cloud project (`npm run test:live`), with what
 * a person would check afterwards. scripts/test-live.sh runs it only with GOOGLE_CLOUD_PROJECT,
 * Application Default Credentials and the tutorial's model (OBJINFER_LIVE_MODEL: a ResNet-50
 * classification SavedModel; OBJINFER_LIVE_LABELS: its ImageNet labels, one per line, in the
 * model's output order), and says which is missing otherwise. The project needs a reservation
 * assignment for QUERY jobs in the location: BigQuery runs object-table inference only there.
 *
 * It makes a dataset, a connection, a bucket and a model, runs ML.PREDICT over the tutorial's
 * sample images and the daisies of the flowers set in the same public bucket, runs again,
 * and removes everything it made.
 */
import { stringify } from 'yaml';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanupPipeline, startPipeline, waitForResult } from '../src/client';
import { loadConfig } from '../src/config';
import { createGcpClients } from '../src/backends/gcp/clients';
import { evaluate } from '../src/evaluation';
import { readResults } from '../src/reads';
import { testClient, uniqueQueue, withWorker } from '../test/support/pipeline';

const project = process.env.GOOGLE_CLOUD_PROJECT!;
const DAISIES = 'gs://cloud-samples-data/vision/automl_classification/flowers/daisy/*.jpg';

const missing = async (call: () => Promise<unknown>) =>
  call().then(
    () => false,
    (error: { code?: number }) => error.code === 404 || error.code === 5, // HTTP 404; gRPC NOT_FOUND
  );

test(
  'the tutorial on a real project: nearly every image predicted, the daisies called daisy, a second run predicts nothing, cleanup leaves nothing billed',
  async () => {
    const { client, connection } = await testClient();
    const suffix = Date.now().toString(36);
    const dir = mkdtempSync(join(tmpdir(), 'objinfer-live-'));
    const taskQueue = uniqueQueue('live');
    const location = process.env.OBJINFER_LIVE_LOCATION ?? 'US';
    writeFileSync(
      join(dir, 'gcp.yaml'),
      stringify({
        name: `live-${suffix}`,
        backend: 'gcp',
        project,
        location,
        dataset: `objinfer_live_${suffix}`,
        connection: `objinfer-live-${suffix}`,
        bucket: `${project}-objinfer-live-${suffix}`.slice(0, 63),
        objectTable: 'vision_images',
        sourceUris: ['gs://cloud-samples-data/vision/*.jpg', DAISIES],
        model: { name: 'resnet50', type: 'TENSORFLOW', source: process.env.OBJINFER_LIVE_MODEL, labels: process.env.OBJINFER_LIVE_LABELS, inputSize: 224 },
        batch: { size: 100, concurrency: 2 },
        evaluation: { groundTruth: { fromPath: 'flowers/{label}/*' } },
        temporal: { taskQueue },
      }),
    );
    const config = loadConfig(join(dir, 'gcp.yaml'));
    const run = () => withWorker(taskQueue, async () => waitForResult(client, (await startPipeline(client, config)).workflowId));
    try {
      const first = await run();
      console.log(`live: ${first.objectsSeen} images seen, ${first.predicted} predicted, ${first.failed} failed`);
      expect(first.objectsSeen).toBeGreaterThan(100);
      expect(first.predicted).toBeGreaterThanOrEqual(Math.ceil(0.95 * first.objectsSeen));

      // The daisies are ImageNet's `daisy`: a model that decodes, resizes or ranks wrongly misses them.
      const daisies = (await readResults(config, {})).filter((r) => r.uri.includes('/flowers/daisy/'));
      const called = daisies.filter((r) => r.label === 'daisy').length;
      console.log(`live: ${called} of ${daisies.length} daisies top-1 daisy`);
      expect(daisies.length).toBeGreaterThan(100);
      expect(called / daisies.length).toBeGreaterThanOrEqual(0.8);
      const evaluation = await evaluate(config);
      expect(evaluation.evaluated).toBe(daisies.length);
      expect(evaluation.accuracy).toBeCloseTo(called / daisies.length, 12);

      const second = await run();
      expect(second).toMatchObject({ predicted: 0, failed: 0 });
    } finally {
      await withWorker(taskQueue, () => cleanupPipeline(client, config, { deleteData: true }));
      await connection.close();
    }
    // Nothing left that bills: the dataset (tables, model), the connection, the bucket (the uploaded model).
    const google = createGcpClients(config);
    expect(await missing(() => google.bigquery.dataset(config.dataset).getMetadata())).toBe(true);
    expect(await missing(() => google.storage.bucket(config.bucket).getMetadata())).toBe(true);
    const name = `projects/${project}/locations/${location.toLowerCase()}/connections/${config.connection}`;
    expect(await missing(() => google.connections.getConnection({ name }))).toBe(true);
  },
  60 * 60 * 1000,
);
