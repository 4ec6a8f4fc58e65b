/** What `objinfer worker` and `dev-server` do (their flags are in ../commands/server). */
import { connectWorker, forgetDevServer, readDevServerRecord, startLocalDevServer } from '../../temporal/connection';
import { stopDetached } from '../../temporal/devServer';
import { createWorker } from '../../worker';
import type { DevServerFlags, WorkerFlags } from '../commands/server';
import { withTemporal } from '../connect';
import { installLogging } from '../logging';

export async function worker(options: WorkerFlags): Promise<void> {
  await withTemporal(async ({ target }) => {
    await installLogging();
    const connection = await connectWorker(target);
    const worker = await createWorker({
      connection,
      namespace: target.namespace,
      taskQueue: options.taskQueue,
      maxConcurrentActivities: options.maxConcurrentActivities,
    });
    const stop = () => worker.shutdown();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    console.error(`worker polling task queue ${options.taskQueue} on ${target.address} (Ctrl-C to stop)`);
    await worker.run();
    await connection.close();
  });
}

export async function startDevServer(options: DevServerFlags): Promise<void> {
  const server = await startLocalDevServer('attached', options);
  console.log(`Temporal dev server at ${server.address}, UI ${server.uiUrl} (Ctrl-C to stop); other objinfer commands here use it`);
  await new Promise<void>((done) => {
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
  await server.stop();
  forgetDevServer();
}

export function stopDevServer(): void {
  const record = readDevServerRecord();
  if (record && stopDetached(record.pid)) console.log(`stopped the dev server (pid ${record.pid}, port ${record.port})`);
  else console.log('no dev server started by objinfer is running');
  forgetDevServer();
}
