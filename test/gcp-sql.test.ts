/**
 * The gcp backend's statements, checked against SQL written by hand from the procedure,
 * for the tutorial's own values; and its reading of Google's errors.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, type PipelineConfig } from '../src/config';
import { ErrorType } from '../src/errors';
import { classifyGoogleError, isDecodeError } from '../src/backends/gcp/errors';
import {
  batchJobId, createModelSql, createObjectTableSql, planSql, predictBatchSql, recordFailuresSql, stringLiteral,
} from '../src/backends/gcp/sql';

function tutorialConfig(overrides: Record<string, unknown> = {}): PipelineConfig {
  const dir = mkdtempSync(join(tmpdir(), 'objinfer-gcp-'));
  writeFileSync(join(dir, 'labels.txt'), 'a\nb\n');
  return parseConfig(
    {
      backend: 'gcp',
      project: 'my-project',
      dataset: 'resnet_inference_test',
      connection: 'lake-connection',
      bucket: 'my-models-bucket',
      objectTable: 'vision_images',
      sourceUris: ['gs://cloud-samples-data/vision/*.jpg'],
      model: { name: 'resnet', type: 'TENSORFLOW', source: 'gs://my-models-bucket/resnet_50/', inputSize: 224 },
      results: { topK: 3 },
      ...overrides,
    },
    dir,
  );
}

test('object table: the procedure\'s CREATE EXTERNAL TABLE over the sample images', () => {
  expect(createObjectTableSql(tutorialConfig())).toBe(
    'CREATE OR REPLACE EXTERNAL TABLE `my-project.resnet_inference_test.vision_images`\n' +
      'WITH CONNECTION `my-project.us.lake-connection`\n' +
      "OPTIONS (object_metadata = 'SIMPLE', uris = ['gs://cloud-samples-data/vision/*.jpg'])",
  );
});

test('model: the procedure\'s CREATE MODEL for a TensorFlow SavedModel', () => {
  expect(createModelSql(tutorialConfig(), 'gs://my-models-bucket/models/resnet/0123abcd/*', '0123abcd')).toBe(
    'CREATE OR REPLACE MODEL `my-project.resnet_inference_test.resnet`\n' +
      "OPTIONS (model_type = 'TENSORFLOW', model_path = 'gs://my-models-bucket/models/resnet/0123abcd/*',\n" +
      "  labels = [('objinfer_version', '0123abcd')])",
  );
});

test('plan: counts objects and those already done for the model version', () => {
  expect(planSql(tutorialConfig())).toBe(
    'SELECT COUNT(*) AS objects_seen, COUNTIF(NOT (' +
      'NOT EXISTS (SELECT 1 FROM `my-project.resnet_inference_test.predictions` AS x WHERE x.uri = o.uri AND x.generation = o.generation AND x.model_version = @model_version) ' +
      'AND NOT EXISTS (SELECT 1 FROM `my-project.resnet_inference_test.predictions_errors` AS x WHERE x.uri = o.uri AND x.generation = o.generation AND x.model_version = @model_version)' +
      ')) AS already_done\n' +
      'FROM `my-project.resnet_inference_test.vision_images` AS o',
  );
});

test('predict batch: ML.PREDICT over DECODE/RESIZE of one hash batch, top-k in SQL, into the results', () => {
  const sql = predictBatchSql(tutorialConfig(), { inputName: 'input_1', outputName: 'activation_49', inputSize: [224, 224] }, { count: 4, index: 2 });
  expect(sql).toBe(
    [
      'INSERT INTO `my-project.resnet_inference_test.predictions`',
      '  (uri, generation, model_version, label, score, top_k, probabilities, run_id, predicted_at)',
      'SELECT uri, generation, @model_version, top_k[OFFSET(0)].label, top_k[OFFSET(0)].score, top_k, probabilities, @run_id, CURRENT_TIMESTAMP()',
      'FROM (',
      '  SELECT p.uri, p.generation,',
      "    ARRAY(SELECT AS STRUCT IFNULL(@labels[SAFE_OFFSET(i)], CONCAT('class_', CAST(i AS STRING))) AS label, i AS index, CAST(s AS FLOAT64) AS score",
      '          FROM UNNEST(p.activation_49) AS s WITH OFFSET AS i ORDER BY s DESC, i LIMIT 3) AS top_k,',
      '    NULL AS probabilities',
      '  FROM ML.PREDICT(MODEL `my-project.resnet_inference_test.resnet`, (',
      '    SELECT o.uri, o.generation, ML.RESIZE_IMAGE(ML.DECODE_IMAGE(o.data), 224, 224, FALSE) AS input_1',
      '    FROM `my-project.resnet_inference_test.vision_images` AS o',
      '    WHERE MOD(ABS(FARM_FINGERPRINT(o.uri)), 4) = 2',
      '    AND NOT EXISTS (SELECT 1 FROM `my-project.resnet_inference_test.predictions` AS x WHERE x.uri = o.uri AND x.generation = o.generation AND x.model_version = @model_version)',
      '    AND NOT EXISTS (SELECT 1 FROM `my-project.resnet_inference_test.predictions_errors` AS x WHERE x.uri = o.uri AND x.generation = o.generation AND x.model_version = @model_version)',
      '  )) AS p',
      ')',
    ].join('\n'),
  );
});

test('a split batch adds one bit of a second hash per level', () => {
  const sql = recordFailuresSql(tutorialConfig(), { count: 4, index: 2, split: [1, 0] });
  expect(sql).toContain(
    "WHERE MOD(ABS(FARM_FINGERPRINT(o.uri)), 4) = 2\n    AND MOD(ABS(FARM_FINGERPRINT(CONCAT('objinfer-split-0:', o.uri))), 2) = 1\n" +
      "    AND MOD(ABS(FARM_FINGERPRINT(CONCAT('objinfer-split-1:', o.uri))), 2) = 0",
  );
});

test('job IDs come from run, batch, split and attempt: the same inputs, the same ID', () => {
  expect(batchJobId('01a2-run', { count: 4, index: 2 }, 1)).toBe('objinfer_01a2-run_b2of4_a1');
  expect(batchJobId('01a2-run', { count: 4, index: 2, split: [1, 0] }, 2)).toBe('objinfer_01a2-run_b2of4_s10_a2');
});

test('string literals escape quotes and backslashes', () => {
  expect(stringLiteral("gs://b/it's\\x/*.jpg")).toBe("'gs://b/it\\'s\\\\x/*.jpg'");
});

describe('Google errors', () => {
  test.each([
    'Permission denied while globbing file pattern. bqcx-1@gcp-sa-bigquery-condel.iam.gserviceaccount.com does not have storage.objects.list access to the Google Cloud Storage bucket.',
    'Access Denied: BigQuery BigQuery: bqcx-1@x.iam.gserviceaccount.com does not have storage.objects.get access to the Google Cloud Storage object.',
    'Service account bqcx-1@gcp-sa-bigquery-condel.iam.gserviceaccount.com does not exist.',
  ])('propagation is retryable: %s', (message) => {
    const error = classifyGoogleError({ code: 403, message }, 'object table');
    expect(error.type).toBe(ErrorType.IamPropagationPending);
    expect(error.retryable).toBe(true);
  });

  test('any other 403 fails at once and says what to do', () => {
    const error = classifyGoogleError({ code: 403, message: 'Access Denied: User does not have bigquery.jobs.create permission' }, 'predict batch');
    expect(error.type).toBe(ErrorType.PermissionDenied);
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/^predict batch: Access Denied: .*Grant the missing permission/);
  });

  test('a 400 is a config problem, not retried', () => {
    const error = classifyGoogleError({ code: 400, message: 'Invalid model_path' }, 'model');
    expect([error.type, error.retryable]).toEqual([ErrorType.InvalidConfig, false]);
  });

  test('decode errors are recognised for splitting', () => {
    expect(isDecodeError({ message: 'ML.DECODE_IMAGE failed: unsupported image format' })).toBe(true);
    expect(isDecodeError({ message: 'Resources exceeded during query execution' })).toBe(false);
  });
});
