/** The client API as a script uses it: the example in examples/ against the real dev server. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { PROJECT_ROOT } from './support/paths';
import { makeFixture, testServer, uniqueQueue, withWorker } from './support/pipeline';

test('examples/start-and-watch.ts starts a run, prints progress and the summary', async () => {
  const taskQueue = uniqueQueue('example');
  const fixture = await makeFixture({ labels: ['red', 'green', 'blue', 'white'], taskQueue, config: { batch: { size: 1, concurrency: 1 } } });
  const output = await withWorker(
    taskQueue,
    () =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
        const child = spawn(join(PROJECT_ROOT, 'node_modules', '.bin', 'tsx'), [join(PROJECT_ROOT, 'examples', 'start-and-watch.ts'), fixture.configFile], {
          env: { ...process.env, TEMPORAL_ADDRESS: testServer().address },
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => (stdout += d));
        child.stderr.on('data', (d) => (stderr += d));
        child.on('exit', (code) => done({ code, stdout, stderr }));
      }),
  );
  expect(output.stderr).toBe('');
  expect(output.code).toBe(0);
  expect(output.stdout).toMatch(/^started objinfer-test-/);
  expect(output.stdout).toMatch(/^(preflight|provision|plan|infer|done): \d+\/\d+ images, \d+\/\d+ batches$/m);
  expect(output.stdout).toMatch(/done: 4 predicted, 0 failed, 0 already done/);
});
