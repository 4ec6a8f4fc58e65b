/**
 * The command line's fixed cost: how long a command takes from process start to exit, against
 * a bare `node -e 0`. Help and version load commander only; `results` reads the warehouse;
 * `status` asks a running dev server. Each command runs BENCH_CLI_RUNS times (default 9).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { writeColorModel } from '../../src/demo';
import type { Row } from '../results';
import { BenchCluster, CLI, median, photos, ROOT, writeConfig } from '../support';

const RUNS = Number(process.env.BENCH_CLI_RUNS ?? 9);

function wallMs(command: string, args: string[], env: NodeJS.ProcessEnv): number {
  const walls: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const start = performance.now();
    const run = spawnSync(command, args, { env, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
    walls.push(performance.now() - start);
    if (run.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${run.status}: ${run.stderr.trim()}`);
  }
  return median(walls);
}

export async function cli(): Promise<Row[]> {
  const cluster = await BenchCluster.start();
  try {
    await cluster.startWorkers(1);
    const models = await writeColorModel(join(ROOT, 'colour-model'));
    const dir = await photos(100);
    // p00000 ... p00009: ten photos.
    const config = writeConfig('cli', {
      dataset: 'bench',
      sourceUris: [`${dir}/p0000*.jpg`],
      model: { name: 'colors', source: models.model, labels: models.labels },
    });
    await cluster.run(config);
    await cluster.stopWorkers();
    const env = { ...process.env, TEMPORAL_ADDRESS: cluster.server.address, OBJINFER_HOME: join(ROOT, 'run', 'state') };
    const configFile = join(ROOT, 'configs', 'cli.yaml');
    const bare = wallMs(process.execPath, ['-e', '0'], env);
    const commands: [string, string[]][] = [
      ['--version', ['--version']],
      ['--help', ['--help']],
      ['results --help', ['results', '--help']],
      ['results (10 rows, local warehouse)', ['results', '--config', configFile]],
      ['status (a finished run, dev server up)', ['status', config.name]],
    ];
    const rows: Row[] = [{ group: 'cli', benchmark: 'cli: node -e 0 (the floor)', result: `${bare.toFixed(0)} ms`, figures: { wallMs: bare } }];
    for (const [name, args] of commands) {
      const ms = wallMs(CLI, args, env);
      rows.push({
        group: 'cli',
        benchmark: `cli: objinfer ${name}`,
        result: `${ms.toFixed(0)} ms = ${(ms / bare).toFixed(1)}x node -e 0`,
        figures: { wallMs: ms, bareNodeRatio: ms / bare },
      });
    }
    return rows;
  } finally {
    await cluster.stop();
  }
}
