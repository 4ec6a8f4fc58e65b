/**
 * Where a run that finds nothing new spends its time (issue 35, goal 3): `objinfer run
 * --no-worker` against a dev server with a worker up, over 10 photos predicted before. Prints
 * each command's wall time beside the workflow's own, then the last run's activities from its
 * history: when each was scheduled, how long it queued and how long it ran.
 *
 *   TEMPORAL_CLI_PATH=.objinfer/tools/venv/bin/temporal npx tsx bench/noop-profile.ts
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { temporal } from '@temporalio/proto';
import { writeColorModel } from '../src/demo';
import { BenchCluster, CLI, median, photos, ROOT, writeConfig } from './support';

const RUNS = 5;
const ms = (t: temporal.api.history.v1.IHistoryEvent['eventTime']) => Number(t!.seconds) * 1000 + (t!.nanos ?? 0) / 1e6;

async function main(): Promise<void> {
  const cluster = await BenchCluster.start();
  try {
    await cluster.startWorkers(1);
    const models = await writeColorModel(join(ROOT, 'colour-model'));
    const dir = await photos(100);
    const config = writeConfig('noop', {
      dataset: 'bench',
      sourceUris: [`${dir}/p0000*.jpg`],
      model: { name: 'colors', source: models.model, labels: models.labels },
    });
    await cluster.run(config);
    const env = { ...process.env, TEMPORAL_ADDRESS: cluster.server.address, OBJINFER_HOME: join(ROOT, 'run', 'state') };
    const walls: number[] = [];
    const workflows: number[] = [];
    let history: temporal.api.history.v1.IHistory | undefined;
    for (let i = 0; i < RUNS; i++) {
      const start = performance.now();
      const run = spawnSync(CLI, ['run', '--no-worker', '--config', join(ROOT, 'configs', 'noop.yaml'), '-o', 'json'], { env, encoding: 'utf8' });
      walls.push(performance.now() - start);
      if (run.status !== 0) throw new Error(run.stderr);
      const { workflowId, runId, predicted } = JSON.parse(run.stdout) as { workflowId: string; runId: string; predicted: number };
      if (predicted !== 0) throw new Error(`expected nothing new, ${predicted} predicted`);
      const handle = cluster.client.workflow.getHandle(workflowId, runId);
      const { startTime, closeTime } = await handle.describe();
      workflows.push(closeTime!.getTime() - startTime.getTime());
      history = await handle.fetchHistory();
    }
    console.log(
      `run --no-worker, nothing new: ${median(walls).toFixed(0)} ms wall, of which the workflow ${median(workflows).toFixed(0)} ms (medians of ${RUNS})`,
    );
    const events = history!.events!;
    const t0 = ms(events[0]!.eventTime);
    const byId = new Map(events.map((e) => [Number(e.eventId), e]));
    console.log('activity            scheduled  queued  ran (ms)');
    for (const e of events) {
      const started = e.activityTaskStartedEventAttributes;
      if (!started) continue;
      const scheduled = byId.get(Number(started.scheduledEventId))!;
      const completed = events.find((c) => Number(c.activityTaskCompletedEventAttributes?.startedEventId) === Number(e.eventId));
      const name = scheduled.activityTaskScheduledEventAttributes!.activityType!.name!;
      const line = [ms(scheduled.eventTime) - t0, ms(e.eventTime) - ms(scheduled.eventTime), completed ? ms(completed.eventTime) - ms(e.eventTime) : NaN];
      console.log(`${name.padEnd(20)}${line.map((n) => n.toFixed(0).padStart(9)).join('')}`);
    }
    console.log(`workflow closed at ${(ms(events.at(-1)!.eventTime) - t0).toFixed(0)} ms`);
  } finally {
    await cluster.stop();
  }
}

void main();
