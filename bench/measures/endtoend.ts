/**
 * Issue 35, goal 2: the whole `objinfer run --config` a user types (its own worker in the
 * process, a dev server already up, a fresh warehouse) over 200 photo-sized JPEGs with the
 * ResNet-50-shaped model, against the Python peer's whole process (interpreter start, imports
 * and model load included) over the same photos and model. Alternated, BENCH_RUNS pairs.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { Row } from '../results';
import { BATCH, BenchCluster, CLI, firstPhotos, median, photos, resnetModel, ROOT, RUNS, writeConfig } from '../support';
import { peerRun } from './inference';

export async function endtoend(): Promise<Row[]> {
  const size = Number(process.env.BENCH_ENDTOEND_IMAGES ?? 200);
  const dir = await photos(size);
  const cluster = await BenchCluster.start();
  try {
    const ours: number[] = [];
    const peers: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      writeConfig(`endtoend-${r}`, {
        dataset: 'bench',
        sourceUris: firstPhotos(dir, size),
        model: { name: 'resnet', source: resnetModel() },
        batch: { size: BATCH, concurrency: 2 },
        temporal: { taskQueue: `endtoend-${r}` },
      });
      const env = { ...process.env, TEMPORAL_ADDRESS: cluster.server.address, OBJINFER_HOME: join(ROOT, 'run', 'state') };
      const start = performance.now();
      const run = spawnSync(CLI, ['run', '--config', join(ROOT, 'configs', `endtoend-${r}.yaml`), '-o', 'json'], { env, encoding: 'utf8' });
      ours.push(performance.now() - start);
      if (run.status !== 0) throw new Error(`objinfer run exited ${run.status}: ${run.stderr}`);
      const { predicted } = JSON.parse(run.stdout) as { predicted: number };
      if (predicted !== size) throw new Error(`expected ${size} predicted, got ${predicted}`);
      peers.push(peerRun(dir, size).wallMs);
    }
    const [mine, theirs] = [median(ours), median(peers)];
    const seconds = (values: number[]) => values.map((v) => (v / 1000).toFixed(2)).join(', ');
    return [
      {
        group: 'endtoend',
        benchmark: `endtoend: the whole \`objinfer run\` over ${size} JPEG 640x480 (own worker, dev server up, new warehouse) against the Python peer's whole process`,
        result: `${(mine / 1000).toFixed(2)} s against ${(theirs / 1000).toFixed(2)} s: **${(theirs / mine).toFixed(2)}x the peer's speed** (objinfer ${seconds(ours)}; peer ${seconds(peers)})`,
        figures: { wallMs: mine, peerWallMs: theirs, peerRatio: theirs / mine },
      },
    ];
  } finally {
    await cluster.stop();
  }
}
