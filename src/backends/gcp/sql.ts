/**
 * The BigQuery statements of the procedure, built from a validated config. Identifiers
 * have passed the config's naming rules and are always back-quoted; values that vary per
 * call (model version, run ID, labels) are query parameters, never spliced in.
 */
import type { PipelineConfig } from '../../config';

/** `project.dataset.name`, back-quoted. */
export function tableRef(config: PipelineConfig, name: string): string {
  return `\`${config.project}.${config.dataset}.${name}\``;
}

export function connectionRef(config: PipelineConfig): string {
  return `\`${config.project}.${config.location.toLowerCase()}.${config.connection}\``;
}

/** A GoogleSQL string literal. */
export function stringLiteral(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** The procedure's object table: the images, listed through the connection. */
export function createObjectTableSql(config: PipelineConfig): string {
  return [
    `CREATE OR REPLACE EXTERNAL TABLE ${tableRef(config, config.objectTable)}`,
    `WITH CONNECTION ${connectionRef(config)}`,
    `OPTIONS (object_metadata = 'SIMPLE', uris = [${config.sourceUris.map(stringLiteral).join(', ')}])`,
  ].join('\n');
}

/** Lists the objects through the connection: the first read that needs the grant to have propagated. */
export function probeObjectTableSql(config: PipelineConfig): string {
  return `SELECT COUNT(*) AS objects FROM ${tableRef(config, config.objectTable)}`;
}

/**
 * `modelPath`: the SavedModel folder's `gs://.../*`, or the ONNX file's URI. The version
 * rides along as a label, so a later run can tell whether the model must be replaced.
 */
export function createModelSql(config: PipelineConfig, modelPath: string, version: string): string {
  return [
    `CREATE OR REPLACE MODEL ${tableRef(config, config.model.name)}`,
    `OPTIONS (model_type = ${stringLiteral(config.model.type)}, model_path = ${stringLiteral(modelPath)},`,
    `  labels = [('objinfer_version', ${stringLiteral(version)})])`,
  ].join('\n');
}

/** Objects of `alias` with neither a prediction nor a recorded failure for @model_version. */
export function pendingPredicate(config: PipelineConfig, alias: string): string {
  const same = `x.uri = ${alias}.uri AND x.generation = ${alias}.generation AND x.model_version = @model_version`;
  return [
    `NOT EXISTS (SELECT 1 FROM ${tableRef(config, config.results.table)} AS x WHERE ${same})`,
    `AND NOT EXISTS (SELECT 1 FROM ${tableRef(config, config.results.errorsTable)} AS x WHERE ${same})`,
  ].join('\n  ');
}

/** Counts for the plan: objects seen, and those already done for @model_version. */
export function planSql(config: PipelineConfig): string {
  return [
    `SELECT COUNT(*) AS objects_seen, COUNTIF(NOT (${pendingPredicate(config, 'o').replace(/\n\s*/g, ' ')})) AS already_done`,
    `FROM ${tableRef(config, config.objectTable)} AS o`,
  ].join('\n');
}

/**
 * Where a batch is: batch `index` of `count` by FARM_FINGERPRINT of the URI, then, when a
 * decode error made it split, one bit per level of a second hash (`split`: the bits so far).
 */
export interface BatchSlice {
  count: number;
  index: number;
  split?: number[];
}

export function batchPredicate(alias: string, slice: BatchSlice): string {
  const clauses = [`MOD(ABS(FARM_FINGERPRINT(${alias}.uri)), ${slice.count}) = ${slice.index}`];
  (slice.split ?? []).forEach((bit, level) => {
    clauses.push(`MOD(ABS(FARM_FINGERPRINT(CONCAT('objinfer-split-${level}:', ${alias}.uri))), 2) = ${bit}`);
  });
  return clauses.join('\n    AND ');
}

export interface ModelSignature {
  inputName: string;
  outputName: string;
  inputSize: [number, number];
}

/**
 * One batch: ML.PREDICT over the batch's pending images, top-k labels computed in SQL
 * (labels from @labels by output index), inserted into the results table.
 * Parameters: @model_version STRING, @run_id STRING, @labels ARRAY<STRING>.
 */
export function predictBatchSql(config: PipelineConfig, model: ModelSignature, slice: BatchSlice): string {
  const [height, width] = model.inputSize;
  const preserve = config.model.preserveAspectRatio ? 'TRUE' : 'FALSE';
  const output = `p.${model.outputName}`;
  const probabilities = config.results.keepProbabilities ? `ARRAY(SELECT CAST(s AS FLOAT64) FROM UNNEST(${output}) AS s WITH OFFSET AS i ORDER BY i)` : 'NULL';
  return [
    `INSERT INTO ${tableRef(config, config.results.table)}`,
    '  (uri, generation, model_version, label, score, top_k, probabilities, run_id, predicted_at)',
    'SELECT uri, generation, @model_version, top_k[OFFSET(0)].label, top_k[OFFSET(0)].score, top_k, probabilities, @run_id, CURRENT_TIMESTAMP()',
    'FROM (',
    '  SELECT p.uri, p.generation,',
    `    ARRAY(SELECT AS STRUCT IFNULL(@labels[SAFE_OFFSET(i)], CONCAT('class_', CAST(i AS STRING))) AS label, i AS index, CAST(s AS FLOAT64) AS score`,
    `          FROM UNNEST(${output}) AS s WITH OFFSET AS i ORDER BY s DESC, i LIMIT ${config.results.topK}) AS top_k,`,
    `    ${probabilities} AS probabilities`,
    `  FROM ML.PREDICT(MODEL ${tableRef(config, config.model.name)}, (`,
    `    SELECT o.uri, o.generation, ML.RESIZE_IMAGE(ML.DECODE_IMAGE(o.data), ${height}, ${width}, ${preserve}) AS ${model.inputName}`,
    `    FROM ${tableRef(config, config.objectTable)} AS o`,
    `    WHERE ${batchPredicate('o', slice)}`,
    `    AND ${pendingPredicate(config, 'o').replace(/\n\s*/g, '\n    ')}`,
    '  )) AS p',
    ')',
  ].join('\n');
}

/** Records objects that cannot be decoded, once a split has isolated them. @error STRING. */
export function recordFailuresSql(config: PipelineConfig, slice: BatchSlice): string {
  return [
    `INSERT INTO ${tableRef(config, config.results.errorsTable)} (uri, generation, model_version, error, run_id, failed_at)`,
    'SELECT o.uri, o.generation, @model_version, @error, @run_id, CURRENT_TIMESTAMP()',
    `FROM ${tableRef(config, config.objectTable)} AS o`,
    `WHERE ${batchPredicate('o', slice)}`,
    `AND ${pendingPredicate(config, 'o').replace(/\n\s*/g, '\n')}`,
  ].join('\n');
}

/** How many pending objects a slice still holds: a failing slice of one is a bad object. */
export function countSliceSql(config: PipelineConfig, slice: BatchSlice): string {
  return [
    'SELECT COUNT(*) AS pending',
    `FROM ${tableRef(config, config.objectTable)} AS o`,
    `WHERE ${batchPredicate('o', slice)}`,
    `AND ${pendingPredicate(config, 'o').replace(/\n\s*/g, '\n')}`,
  ].join('\n');
}

/** A BigQuery job ID for a batch: derived from run, batch and attempt, never random. */
export function batchJobId(runId: string, slice: BatchSlice, attempt: number): string {
  const split = slice.split?.length ? `_s${slice.split.join('')}` : '';
  return `objinfer_${runId.replace(/[^A-Za-z0-9_-]/g, '_')}_b${slice.index}of${slice.count}${split}_a${attempt}`;
}
