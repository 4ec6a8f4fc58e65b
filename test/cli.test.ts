/**
 * The CLI as a user meets it: bad input exits non-zero with one line naming the field,
 * before any side effect (no dev server, no warehouse, no workflow).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { CLI } from './support/paths';
import { testServer } from './support/pipeline';

function runCli(args: string[], cwd: string) {
  const home = join(cwd, 'state');
  // An address where nothing listens: a command that tried to reach Temporal would fail differently.
  const env = { ...process.env, OBJINFER_HOME: home, TEMPORAL_ADDRESS: '127.0.0.1:1' };
  const result = spawnSync(CLI, args, { cwd, env, encoding: 'utf8', timeout: 60_000 });
  return { ...result, home };
}

function workspace(config: Record<string, unknown>) {
  const dir = mkdtempSync(join(tmpdir(), 'objinfer-cli-'));
  mkdirSync(join(dir, 'images'));
  writeFileSync(join(dir, 'model.onnx'), 'x');
  writeFileSync(join(dir, 'bad.yaml'), stringify(config));
  return dir;
}

const base = {
  dataset: 'd',
  bucket: 'my-bucket',
  objectTable: 't',
  sourceUris: ['images/*'],
  model: { name: 'm', source: 'model.onnx' },
  local: { warehouse: 'state/warehouse.duckdb', storage: 'state/storage' },
};

test.each([
  ['an unknown field', { ...base, batchsize: 4 }, /config error: batchsize: unknown field "batchsize"/],
  ['a bad identifier', { ...base, objectTable: 'images; DROP' }, /config error: objectTable: an object table name must start/],
  ['a missing model file', { ...base, model: { name: 'm', source: 'nope.onnx' } }, /config error: model\.source: file not found: .*nope\.onnx/],
])('run with %s exits 2 naming the field, and changes nothing', (_case, config, message) => {
  const dir = workspace(config);
  const result = runCli(['run', '--config', 'bad.yaml'], dir);
  expect(result.status).toBe(2);
  expect(result.stderr).toMatch(message);
  expect(result.stderr.trim().split('\n')).toHaveLength(2); // the problem, and what to do
  expect(existsSync(result.home)).toBe(false); // no warehouse, no storage, no dev server state
  expect(readdirSync(dir).sort()).toEqual(['bad.yaml', 'images', 'model.onnx']);
});

test('a missing config file is named', () => {
  const dir = workspace(base);
  const result = runCli(['run', '--config', 'missing.yaml'], dir);
  expect(result.status).toBe(2);
  expect(result.stderr).toMatch(/--config: file not found: .*missing\.yaml/);
});

test('an unreachable Temporal names the address and exits 3', () => {
  const dir = workspace(base);
  const result = runCli(['status', 'anything'], dir);
  expect(result.status).toBe(3);
  expect(result.stderr).toMatch(/cannot reach Temporal at 127\.0\.0\.1:1/);
});

test('results -o rejects an unknown format with exit 2', () => {
  const dir = workspace(base);
  const result = runCli(['results', '-o', 'xml'], dir);
  expect(result.status).toBe(2);
  expect(result.stderr).toMatch(/Allowed choices are table, json, jsonl, csv/);
});

test("`objinfer plan` prints every statement of the tutorial's own config, without credentials and without waiting for them", () => {
  const dir = mkdtempSync(join(tmpdir(), 'objinfer-plan-'));
  // No ADC anywhere: an empty HOME and gcloud config, no GOOGLE_* variables.
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: dir,
    CLOUDSDK_CONFIG: join(dir, 'gcloud'),
    OBJINFER_HOME: join(dir, 'state'),
    TEMPORAL_ADDRESS: '127.0.0.1:1',
  };
  const result = spawnSync(CLI, ['plan', '--config', join(__dirname, '..', 'examples', 'tutorial.gcp.yaml')], {
    cwd: dir,
    env,
    encoding: 'utf8',
    timeout: 30_000,
  });
  expect(result.status).toBe(0);
  // Nothing on stderr: before, the Google clients looked for a metadata server and warned, for a minute.
  expect(result.stderr).toBe('');
  for (const statement of [
    /CREATE OR REPLACE EXTERNAL TABLE `[^`]+\.resnet_inference_test\.vision_images`\s+WITH CONNECTION `[^`]+\.us\.lake-connection`/,
    /OPTIONS \(object_metadata = 'SIMPLE', uris = \['gs:\/\/cloud-samples-data\/vision\/\*\.jpg'\]/,
    /CREATE OR REPLACE MODEL `[^`]+\.resnet_inference_test\.[a-z_]+`\s+OPTIONS \(model_type = 'TENSORFLOW'/,
    /ML\.PREDICT\(MODEL `[^`]+`/,
    /ML\.RESIZE_IMAGE\(ML\.DECODE_IMAGE\(o\.data\), 224, 224, FALSE\)/,
    /testIamPermissions/,
    /no dry-run estimates: they need Google credentials/,
  ]) {
    expect(result.stdout).toMatch(statement);
  }
});

test('a config with several problems lists each on its own line, at once', () => {
  const dir = workspace({ ...base, dataset: 'a b', bucket: 'B', batch: { size: -1 } });
  const result = runCli(['plan', '--config', 'bad.yaml'], dir);
  expect(result.status).toBe(2);
  expect(result.stderr).not.toContain('\\n');
  expect(result.stderr.split('\n')).toEqual([
    'objinfer: config errors (3):',
    expect.stringMatching(/^ {2}- dataset: a dataset name must start/),
    expect.stringMatching(/^ {2}- bucket: a bucket name is 3-63/),
    '  - batch.size: must be at least 1 image',
    '  fix the config and run again; nothing was changed',
    '',
  ]);
});

test("the suite's temporary files go to its own folder, which the run removes at its end", () => {
  const { tmp } = testServer();
  expect(tmp).toMatch(/objinfer-suite-/);
  expect(tmpdir()).toBe(tmp); // every mkdtemp(tmpdir()) of a test lands there
});
