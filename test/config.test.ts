/** Config validation: every problem names the field, before anything happens. */
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig, parseConfig } from '../src/config';

function workspace() {
  const dir = mkdtempSync(join(tmpdir(), 'objinfer-config-'));
  mkdirSync(join(dir, 'images'));
  writeFileSync(join(dir, 'model.onnx'), 'not checked here');
  return dir;
}

const valid = {
  dataset: 'my_dataset',
  bucket: 'my-bucket',
  objectTable: 'images',
  sourceUris: ['images/*.png'],
  model: { name: 'resnet', source: 'model.onnx' },
};

function errorOf(raw: unknown, dir = workspace()): ConfigError {
  try {
    parseConfig(raw, dir);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

test('a minimal config gets defaults and absolute paths', () => {
  const dir = workspace();
  const config = parseConfig(valid, dir);
  expect(config.backend).toBe('local');
  expect(config.model.source).toBe(join(dir, 'model.onnx'));
  expect(config.sourceUris).toEqual([`file://${join(dir, 'images')}/*.png`]);
  expect(config.results).toEqual({ table: 'predictions', errorsTable: 'predictions_errors', labelsTable: 'resnet_labels', topK: 5, keepProbabilities: false });
  expect(config.batch).toEqual({ size: 64, concurrency: 2, heartbeatTimeoutMs: 30_000 });
  expect(config.iam).toEqual({ propagationTimeoutMs: 600_000, simulatedPropagationDelayMs: 0 });
  expect(config.name).toBe('my-dataset.images');
});

test('an unknown field is named with its path', () => {
  const error = errorOf({ ...valid, batch: { size: 8, concurency: 2 } });
  expect(error.field).toBe('batch.concurency');
  expect(error.problem).toMatch(/unknown field "concurency"/);
});

test('a bad identifier is named with the rule it breaks', () => {
  const error = errorOf({ ...valid, dataset: 'my-dataset; DROP TABLE x' });
  expect(error.field).toBe('dataset');
  expect(error.problem).toMatch(/letters, digits and underscores/);
});

test('a missing model file is named with its path', () => {
  const error = errorOf({ ...valid, model: { name: 'resnet', source: 'missing.onnx' } });
  expect(error.field).toBe('model.source');
  expect(error.problem).toMatch(/file not found: .*missing\.onnx/);
});

test('gs:// sources are refused on the local backend', () => {
  expect(errorOf({ ...valid, sourceUris: ['gs://cloud-samples-data/vision/*.jpg'] }).field).toBe('sourceUris.0');
});

test('a bad duration is named', () => {
  expect(errorOf({ ...valid, iam: { propagationTimeout: 'ten minutes' } }).field).toBe('iam.propagationTimeout');
});

test('the gcp backend needs a project', () => {
  const error = errorOf({ ...valid, backend: 'gcp', sourceUris: ['gs://b/x/*.jpg'], model: { name: 'm', source: 'gs://b/m/' } });
  expect(error.field).toBe('project');
});

test('files are YAML, relative to their folder, and env overrides win', () => {
  const dir = workspace();
  const file = join(dir, 'objinfer.yaml');
  writeFileSync(file, 'dataset: d\nbucket: my-bucket\nobjectTable: t\nsourceUris: [images/*]\nmodel: {name: m, source: model.onnx}\nbatch: {size: 16}\n');
  const config = loadConfig(file, {}, { env: { OBJINFER_BATCH_SIZE: '3' } });
  expect(config.batch.size).toBe(3);
  expect(config.model.source).toBe(join(dir, 'model.onnx'));
});
