/** `objinfer worker` and `dev-server`: the processes a pipeline runs on. */
import { Command } from 'commander';
import { connectWorker, forgetDevServer, readDevServerRecord, startLocalDevServer } from '../../temporal/connection';
import { stopDetached } from '../../temporal/devServer';
import { createWorker } from '../../worker';
import { port, positiveInt, withTemporal } from '../common';

export function addServerCommands(program: Command): void {
  program
    .command('worker')
    .description('run a worker (scale out by starting more on the same task queue)')
    .option('-q, --task-queue <name>', 'task queue to poll', 'objinfer')
    .option('--max-concurrent-activities <n>', 'steps and batches this worker runs at once', positiveInt, 8)
    .action(async (options: { taskQueue: string; maxConcurrentActivities: number }) => {
      await withTemporal(async ({ target }) => {
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
    });

  const devServer = program.command('dev-server').description('a local Temporal dev server (SQLite in ~/.local/state/objinfer/, UI on :8233)');
  devServer
    .command('start', { isDefault: true })
    .description('run a dev server in the foreground until Ctrl-C')
    .option('--port <port>', 'port to listen on (default 7233)', port)
    .option('--ui-port <port>', 'port of the web UI (default 8233, or --port + 1000)', port)
    .action(async (options: { port?: number; uiPort?: number }) => {
      const server = await startLocalDevServer('attached', options);
      console.log(`Temporal dev server at ${server.address}, UI ${server.uiUrl} (Ctrl-C to stop); other objinfer commands here use it`);
      await new Promise<void>((done) => {
        process.once('SIGINT', done);
        process.once('SIGTERM', done);
      });
      await server.stop();
      forgetDevServer();
    });
  devServer
    .command('stop')
    .description('stop the dev server that `objinfer demo` or `run` left running')
    .action(() => {
      const record = readDevServerRecord();
      if (record && stopDetached(record.pid)) console.log(`stopped the dev server (pid ${record.pid}, port ${record.port})`);
      else console.log('no dev server started by objinfer is running');
      forgetDevServer();
    });
}
