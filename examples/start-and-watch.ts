/**
 * A client script: start (or attach to) a pipeline run and print its progress until it
 * ends. Connection settings come from TEMPORAL_ADDRESS / envconfig profiles, so the same
 * script works against the dev server, a self-hosted cluster or Temporal Cloud.
 * A worker must poll the config's task queue (`objinfer worker`).
 *
 *   npx tsx examples/start-and-watch.ts path/to/objinfer.yaml
 */
import { connectTemporal, failureMessage, loadConfig, startPipeline, waitForResult } from '../src/client';

async function main(configFile: string): Promise<void> {
  const config = loadConfig(configFile);
  const temporal = await connectTemporal({ startDevServer: 'no' });
  try {
    const { workflowId, attached } = await startPipeline(temporal.client, config, { searchAttributes: temporal.searchAttributes });
    console.log(`${attached ? 'attached to' : 'started'} ${workflowId}`);
    const summary = await waitForResult(temporal.client, workflowId, {
      onProgress: (p) => console.log(`${p.stage}: ${p.imagesDone}/${p.imagesTotal} images, ${p.batchesDone}/${p.batchesTotal} batches`),
    });
    console.log(`done: ${summary.predicted} predicted, ${summary.failed} failed, ${summary.alreadyDone} already done`);
  } catch (error) {
    console.error(`failed: ${failureMessage(error)}`);
    process.exitCode = 1;
  } finally {
    await temporal.close();
  }
}

void main(process.argv[2] ?? 'objinfer.yaml');
