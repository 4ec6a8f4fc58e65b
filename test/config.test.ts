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

test('the watch section: durations in milliseconds, defaults for what is left out, and a bad value named', () => {
  expect(parseConfig(valid, workspace()).watch).toBeUndefined();
  expect(parseConfig({ ...valid, watch: { debounce: '50ms', reconcileEvery: '1h' } }, workspace()).watch).toEqual({
    debounceMs: 50,
    maxWaitMs: 1000,
    maxBatch: 500,
    reconcileEveryMs: 3_600_000,
  });
  expect(errorOf({ ...valid, watch: { maxBatch: 0 } }).field).toBe('watch.maxBatch');
  expect(errorOf({ ...valid, watch: { reconcileEvery: '0s' } }).field).toBe('watch.reconcileEvery');
  expect(errorOf({ ...valid, watch: { debounce: 'soon' } }).field).toBe('watch.debounce');
});

test('the gcp backend needs a project', () => {
  const error = errorOf({ ...valid, backend: 'gcp', sourceUris: ['gs://b/x/*.jpg'], model: { name: 'm', source: 'gs://b/m/' } });
  expect(error.field).toBe('project');
});

test('batches default to BigQuery-sized ones on gcp (2000 images a job) and stay 64 locally; a size given wins on both', () => {
  const gcp = {
    ...valid,
    backend: 'gcp',
    project: 'my-project',
    sourceUris: ['gs://my-images/x/*.jpg'],
    model: { name: 'm', source: 'gs://my-models/m.onnx', inputSize: 224 },
  };
  expect(parseConfig(gcp, workspace()).batch.size).toBe(2000);
  expect(parseConfig({ ...gcp, batch: { size: 500 } }, workspace()).batch.size).toBe(500);
  expect(parseConfig(valid, workspace()).batch.size).toBe(64);
});

test('files are YAML, relative to their folder, and env overrides win', () => {
  const dir = workspace();
  const file = join(dir, 'objinfer.yaml');
  writeFileSync(file, 'dataset: d\nbucket: my-bucket\nobjectTable: t\nsourceUris: [images/*]\nmodel: {name: m, source: model.onnx}\nbatch: {size: 16}\n');
  const config = loadConfig(file, {}, { env: { OBJINFER_BATCH_SIZE: '3' } });
  expect(config.batch.size).toBe(3);
  expect(config.model.source).toBe(join(dir, 'model.onnx'));
});

describe('values that would fail later are refused at the check, naming the field (issue 34)', () => {
  test('bounds of 0s: iam.propagationTimeout and batch.heartbeatTimeout', () => {
    expect(errorOf({ ...valid, iam: { propagationTimeout: '0s' } }).problems).toEqual([
      { field: 'iam.propagationTimeout', problem: 'must be at least 1s (0 would mean no bound at all)' },
    ]);
    expect(errorOf({ ...valid, batch: { heartbeatTimeout: '0s' } }).field).toBe('batch.heartbeatTimeout');
  });

  test('a model name too long for a folder on the local backend (BigQuery allows it)', () => {
    const long = 'm'.repeat(1024);
    expect(errorOf({ ...valid, model: { ...valid.model, name: long } }).problem).toMatch(/^1024 characters is longer than the 200 the local backend allows/);
    expect(errorOf({ ...valid, model: { ...valid.model, name: long } }).field).toBe('model.name');
  });

  test('a labels path or ONNX model path that is a folder', () => {
    const dir = workspace();
    mkdirSync(join(dir, 'labels'));
    mkdirSync(join(dir, 'model-dir'));
    expect(() => loadConfigIn(dir, { ...valid, model: { ...valid.model, labels: 'labels' } })).toThrow(
      `model.labels: ${join(dir, 'labels')} is a folder; point it at the labels file (a text file with one label per line)`,
    );
    expect(() => loadConfigIn(dir, { ...valid, model: { ...valid.model, source: 'model-dir' } })).toThrow(
      /model\.source: .*model-dir is a folder; point it at the \.onnx file/,
    );
  });

  test('a bucket folder among the images: the model would be listed as an image', () => {
    const error = errorOf({ ...valid, sourceUris: ['images/*'], local: { storage: 'images' } });
    expect(error.field).toBe('sourceUris.0');
    expect(error.problem).toMatch(
      /also matches the model objinfer copies into the bucket .*: narrow the pattern \(e\.g\. images\/\*\.jpg\) or set local\.storage/,
    );
  });

  test('sourceUris ["*"] next to the default .objinfer/: the warehouse would be listed as an image', () => {
    const error = errorOf({ ...valid, sourceUris: ['*'] });
    expect(error.problems[0]).toEqual({
      field: 'sourceUris.0',
      problem: expect.stringMatching(/also matches the warehouse \(.*\.objinfer\/warehouse\.duckdb\): .* or set local\.warehouse to a place outside it/),
    });
    // A pattern that names only images is fine beside the same default folder.
    expect(() => parseConfig({ ...valid, sourceUris: ['images/*.png'] }, workspace())).not.toThrow();
  });

  test('absurd patterns: too long, or too many wildcards', () => {
    expect(errorOf({ ...valid, sourceUris: [`images/${'a'.repeat(5000)}*`] }).problem).toMatch(/^a pattern of 5008 characters is longer than the 4096 allowed/);
    expect(errorOf({ ...valid, sourceUris: [`images/${'*'.repeat(100)}`] }).problem).toMatch(/^a pattern with 100 wildcards is more than the 64 allowed/);
  });
});

function loadConfigIn(dir: string, raw: Record<string, unknown>) {
  const file = join(dir, 'objinfer.yaml');
  writeFileSync(file, JSON.stringify(raw));
  return loadConfig(file);
}
