/** `objinfer worker` and `dev-server`: the processes a pipeline runs on. What they do is in ../actions/server. */
import { Command } from 'commander';
import { port, positiveInt } from '../common';

export interface WorkerFlags {
  taskQueue: string;
  maxConcurrentActivities: number;
}
export interface DevServerFlags {
  port?: number;
  uiPort?: number;
}

const actions = () => import('../actions/server');

export function addServerCommands(program: Command): void {
  program
    .command('worker')
    .description('run a worker (scale out by starting more on the same task queue)')
    .option('-q, --task-queue <name>', 'task queue to poll', 'objinfer')
    .option('--max-concurrent-activities <n>', 'steps and batches this worker runs at once', positiveInt, 8)
    .action(async (options: WorkerFlags) => (await actions()).worker(options));

  const devServer = program.command('dev-server').description('a local Temporal dev server (SQLite in ~/.local/state/objinfer/, UI on :8233)');
  devServer
    .command('start', { isDefault: true })
    .description('run a dev server in the foreground until Ctrl-C')
    .option('--port <port>', 'port to listen on (default 7233)', port)
    .option('--ui-port <port>', 'port of the web UI (default 8233, or --port + 1000)', port)
    .action(async (options: DevServerFlags) => (await actions()).startDevServer(options));
  devServer
    .command('stop')
    .description('stop the dev server that `objinfer demo` or `run` left running')
    .action(async () => (await actions()).stopDevServer());
}
