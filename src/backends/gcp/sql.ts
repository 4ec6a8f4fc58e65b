/**
 * The BigQuery statements of the procedure, built from a validated spec. Identifiers have
 * passed the config's naming rules and are always back-quoted; values that vary per call
 * (prediction version, run ID) are STRING query parameters, never spliced in. Object URIs
 * and labels never appear in SQL text.
 */
import type { RunSpec } from '../../config';
import { ACCEPTED_CONTENT_TYPES, MAX_IMAGE_BYTES } from '../../images/limits';
import type { BatchSlice } from '../../workflows/contract';

/** `project.dataset.name`, back-quoted. */
export function tableRef(spec: RunSpec, name: string): string {
  return `\`${spec.project}.${spec.dataset}.${name}\``;
}

export function connectionRef(spec: RunSpec): string {
  return `\`${spec.project}.${spec.location.toLowerCase()}.${spec.connection}\``;
}

/** A GoogleSQL string literal. */
export function stringLiteral(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** The run's pending table: what the plan found still to do, written once per run. */
export function pendingTableName(runId: string): string {
  return `_objinfer_pending_${runId.replace(/[^A-Za-z0-9_]/g, '_')}`;
}

/**
 * How stale the object table's cached listing may be before a query lists the bucket itself:
 * 7 days, the most BigQuery allows (30 minutes to 7 days). Each run refreshes it at its start,
 * so only a run longer than this falls back to listing the bucket in every batch.
 */
export const OBJECT_TABLE_STALENESS_DAYS = 7;

/** max_staleness as tables.get encodes it (an INTERVAL as `Y-M D H:M:S`). */
export const OBJECT_TABLE_STALENESS = `0-0 ${OBJECT_TABLE_STALENESS_DAYS} 0:0:0`;

/**
 * The procedure's object table: the images, listed through the connection. Its metadata is
 * cached and refreshed by hand once per run (refreshObjectTableSql), so batches read the
 * listing from the cache instead of listing the bucket again.
 */
export function createObjectTableSql(spec: RunSpec): string {
  return [
    `CREATE OR REPLACE EXTERNAL TABLE ${tableRef(spec, spec.objectTable)}`,
    `WITH CONNECTION ${connectionRef(spec)}`,
    `OPTIONS (object_metadata = 'SIMPLE', uris = [${spec.sourceUris.map(stringLiteral).join(', ')}],`,
    `  max_staleness = INTERVAL ${OBJECT_TABLE_STALENESS_DAYS} DAY, metadata_cache_mode = 'MANUAL')`,
  ].join('\n');
}

/** Lists the objects through the connection into the cache: where a fresh grant shows. */
export function refreshObjectTableSql(spec: RunSpec): string {
  return `CALL BQ.REFRESH_EXTERNAL_METADATA_CACHE('${spec.project}.${spec.dataset}.${spec.objectTable}')`;
}

/** `modelPath`: the SavedModel folder's `gs://.../*`, or the ONNX file's URI. */
export function createModelSql(spec: RunSpec, modelPath: string): string {
  return [
    `CREATE OR REPLACE MODEL ${tableRef(spec, spec.model.name)}`,
    `OPTIONS (model_type = ${stringLiteral(spec.model.type)}, model_path = ${stringLiteral(modelPath)})`,
  ].join('\n');
}

/** Rows of `table` for (uri, generation) of `alias` and @model_version; `extra` narrows further. */
function sameObject(spec: RunSpec, table: string, alias: string, extra = ''): string {
  return `SELECT 1 FROM ${tableRef(spec, table)} AS x WHERE x.model_version = @model_version AND x.uri = ${alias}.uri AND x.generation = ${alias}.generation${extra}`;
}

/**
 * A rank-range batch's URIs lie in [@uri_lo, @uri_hi] (the pending table is numbered in URI
 * order, so batches' ranges do not overlap): a constant range on the clustering column, so
 * BigQuery reads only those blocks of the results, errors and object tables.
 */
function withinBounds(alias: string, slice: BatchSlice): string {
  return slice.ranks ? ` AND ${alias}.uri BETWEEN @uri_lo AND @uri_hi` : '';
}

/** The run's pending table's columns; it is clustered on `rank`, so a batch reads only its ranks. */
export const PENDING_COLUMNS: { name: string; type: 'STRING' | 'INTEGER' }[] = [
  { name: 'uri', type: 'STRING' },
  { name: 'generation', type: 'INTEGER' },
  { name: 'content_type', type: 'STRING' },
  { name: 'size', type: 'INTEGER' },
  { name: 'status', type: 'STRING' },
  { name: 'rank', type: 'INTEGER' },
];

/**
 * Fills the run's pending table (made empty, clustered on rank, by the plan): every object
 * with its status for @model_version. done: predicted earlier; failed: a permanent failure
 * stands (unless retrying failures); refused: BigQuery would refuse it (size, content type);
 * pending: to predict. Objects to do are numbered 0, 1, ... in URI order (`rank`), which is
 * what batches are ranges of. It inserts only into an empty table, so it can run again.
 */
export function fillPendingSql(spec: RunSpec, runId: string): string {
  const { results } = spec;
  const types = ACCEPTED_CONTENT_TYPES.map(stringLiteral).join(', ');
  const pending = tableRef(spec, pendingTableName(runId));
  const todo = "s.status IN ('pending', 'refused')";
  return [
    `INSERT INTO ${pending} (${PENDING_COLUMNS.map((c) => c.name).join(', ')})`,
    `SELECT s.uri, s.generation, s.content_type, s.size, s.status, IF(${todo}, ROW_NUMBER() OVER (PARTITION BY ${todo} ORDER BY s.uri, s.generation) - 1, NULL)`,
    'FROM (',
    '  SELECT o.uri, o.generation, o.content_type, o.size,',
    '    CASE',
    `      WHEN EXISTS (${sameObject(spec, results.table, 'o')}) THEN 'done'`,
    ...(spec.retryFailed ? [] : [`      WHEN EXISTS (${sameObject(spec, results.errorsTable, 'o', " AND x.kind = 'permanent'")}) THEN 'failed'`]),
    `      WHEN o.size > ${MAX_IMAGE_BYTES} OR IFNULL(o.content_type, '') NOT IN (${types}) THEN 'refused'`,
    "      ELSE 'pending'",
    '    END AS status',
    `  FROM ${tableRef(spec, spec.objectTable)} AS o`,
    ') AS s',
    `WHERE NOT EXISTS (SELECT 1 FROM ${pending})`,
  ].join('\n');
}

/** A rank-range batch's first and last URI, read from its block of the pending table. */
export function batchBoundsSql(spec: RunSpec, slice: BatchSlice, runId: string): string {
  const [first, end] = slice.ranks ?? [0, 0];
  return `SELECT MIN(uri) AS uri_lo, MAX(uri) AS uri_hi FROM ${tableRef(spec, pendingTableName(runId))} WHERE rank >= ${first} AND rank < ${end}`;
}

export function countPendingSql(spec: RunSpec, runId: string): string {
  return `SELECT status, COUNT(*) AS n FROM ${tableRef(spec, pendingTableName(runId))} GROUP BY status`;
}

/**
 * Where a batch is: its ranks (in the pending table; elsewhere its URI range), or, in runs
 * from before ranks, batch `index` of `count` by FARM_FINGERPRINT of the URI; then, when it
 * was narrowed, one bit per level of a second hash (`split`: the bits so far).
 */
export function slicePredicate(alias: string, slice: BatchSlice, pendingTable = false): string {
  const [first, end] = slice.ranks ?? [];
  const clauses = !slice.ranks
    ? [`MOD(ABS(FARM_FINGERPRINT(${alias}.uri)), ${slice.count}) = ${slice.index}`]
    : pendingTable
      ? [`${alias}.rank >= ${first} AND ${alias}.rank < ${end}`]
      : [`${alias}.uri BETWEEN @uri_lo AND @uri_hi`];
  (slice.split ?? []).forEach((bit, level) => {
    clauses.push(`MOD(ABS(FARM_FINGERPRINT(CONCAT('objinfer-split-${level}:', ${alias}.uri))), 2) = ${bit === 1 ? 1 : 0}`);
  });
  return clauses.join(' AND ');
}

/** Objects of the pending table `q` in the slice with the status, not yet written by this run. */
function todo(spec: RunSpec, status: 'pending' | 'refused', slice: BatchSlice): string {
  const thisRun = ` AND x.run_id = @run_id${withinBounds('x', slice)}`;
  return [
    `q.status = '${status}' AND ${slicePredicate('q', slice, true)}`,
    `      AND NOT EXISTS (${sameObject(spec, spec.results.table, 'q', thisRun)})`,
    `      AND NOT EXISTS (${sameObject(spec, spec.results.errorsTable, 'q', thisRun)})`,
  ].join('\n');
}

export interface ModelSignature {
  inputName: string;
  outputName: string;
  inputSize: [number, number];
  /** Logits get a softmax in SQL before ranking; absent: probabilities, used as given. */
  scores?: 'probabilities' | 'logits';
}

/**
 * The class scores of an output array as FLOAT64, in output order: as given, or, for logits,
 * a numerically stable softmax, exp(x - max) / sum of exp(x - max), as NumPy computes it.
 */
export function scoresSql(output: string, scores: ModelSignature['scores']): string {
  const asGiven = `ARRAY(SELECT CAST(s AS FLOAT64) FROM UNNEST(${output}) AS s WITH OFFSET AS i ORDER BY i)`;
  if (scores !== 'logits') return asGiven;
  // Max and sum are computed once per row in a scalar subquery (no window functions, which
  // some engines evaluate once per element).
  const value = 'CAST(s AS FLOAT64)';
  return [
    `(SELECT ARRAY(SELECT EXP(${value} - c.m) / c.z FROM UNNEST(${output}) AS s WITH OFFSET AS i ORDER BY i)`,
    `       FROM (SELECT m, (SELECT SUM(EXP(${value} - m)) FROM UNNEST(${output}) AS s) AS z`,
    `             FROM (SELECT MAX(${value}) AS m FROM UNNEST(${output}) AS s)) AS c)`,
  ].join('\n');
}

/** The feature column: the image, decoded and resized as the model expects it. */
function featureSql(spec: RunSpec, model: ModelSignature, alias: string): string {
  const [height, width] = model.inputSize;
  const preserve = spec.model.preserveAspectRatio ? 'TRUE' : 'FALSE';
  return `ML.RESIZE_IMAGE(ML.DECODE_IMAGE(${alias}.data), ${height}, ${width}, ${preserve}) AS ${model.inputName}`;
}

/**
 * The canary: ML.PREDICT over `limit` objects BigQuery would accept (after skipping
 * `offset`), in a fixed order, returning the model's output columns as they come (the
 * image column left out). Nothing is written: its rows and their schema are what the run
 * checks before any batch (the output's name and type, its length, its range).
 */
export function canarySql(spec: RunSpec, model: ModelSignature, limit: number, offset = 0): string {
  const types = ACCEPTED_CONTENT_TYPES.map(stringLiteral).join(', ');
  return [
    `SELECT p.* EXCEPT (${model.inputName})`,
    `FROM ML.PREDICT(MODEL ${tableRef(spec, spec.model.name)}, (`,
    `  SELECT o.uri, ${featureSql(spec, model, 'o')}`,
    `  FROM ${tableRef(spec, spec.objectTable)} AS o`,
    `  WHERE o.size <= ${MAX_IMAGE_BYTES} AND IFNULL(o.content_type, '') IN (${types})`,
    `  ORDER BY FARM_FINGERPRINT(o.uri), o.uri LIMIT ${limit}${offset ? ` OFFSET ${offset}` : ''}`,
    ')) AS p',
  ].join('\n');
}

/**
 * One batch, as one script job (parameters @model_version and @run_id, both STRING):
 * 1. objects BigQuery would refuse go to the errors table with the reason;
 * 2. ML.PREDICT over the rest, scores (a softmax of logits) and top-k computed in SQL, labels
 *    taken from the labels table;
 * 3. failures of earlier runs that this run predicted or failed again are removed;
 * 4. the batch's counts, as the job's result.
 * Each statement only adds what this run has not written, so the script can run again.
 */
export function predictBatchSql(spec: RunSpec, model: ModelSignature, slice: BatchSlice, runId: string): string {
  const { results } = spec;
  const output = `p.${model.outputName}`;
  // keepProbabilities keeps the outputs as the model gave them (for logits: the logits).
  const kept = results.keepProbabilities ? scoresSql(output, 'probabilities') : 'ARRAY<FLOAT64>[]';
  const pending = tableRef(spec, pendingTableName(runId));
  const errorColumns = '(uri, generation, model_version, error, kind, run_id, failed_at)';
  return [
    `INSERT INTO ${tableRef(spec, results.errorsTable)} ${errorColumns}`,
    'SELECT q.uri, q.generation, @model_version,',
    `  IF(q.size > ${MAX_IMAGE_BYTES}, CONCAT('image is ', CAST(q.size AS STRING), ' bytes; ML.DECODE_IMAGE accepts at most ${MAX_IMAGE_BYTES} bytes'),`,
    "     CONCAT('content type ', IFNULL(q.content_type, 'unknown'), ' is not JPEG, PNG or BMP; ML.DECODE_IMAGE cannot decode it')),",
    "  'permanent', @run_id, CURRENT_TIMESTAMP()",
    `FROM ${pending} AS q`,
    `WHERE ${todo(spec, 'refused', slice)};`,
    '',
    `INSERT INTO ${tableRef(spec, results.table)} (uri, generation, model_version, label, score, top_k, probabilities, run_id, predicted_at)`,
    'SELECT r.uri, r.generation, @model_version, r.top_k[OFFSET(0)].label, r.top_k[OFFSET(0)].score, r.top_k, r.probabilities, @run_id, CURRENT_TIMESTAMP()',
    'FROM (',
    '  SELECT t.uri, t.generation, t.probabilities,',
    "    ARRAY(SELECT AS STRUCT COALESCE(n.label, CONCAT('class_', CAST(c.index AS STRING))) AS label, c.index, c.score",
    '          FROM UNNEST(t.top) AS c WITH OFFSET AS k LEFT JOIN UNNEST(l.labels) AS n ON n.index = c.index ORDER BY k) AS top_k',
    '  FROM (',
    '    SELECT s.uri, s.generation, s.probabilities,',
    `      ARRAY(SELECT AS STRUCT i AS index, v AS score FROM UNNEST(s.scores) AS v WITH OFFSET AS i ORDER BY v DESC, i LIMIT ${results.topK}) AS top`,
    '    FROM (',
    '      SELECT p.uri, p.generation,',
    `      ${scoresSql(output, model.scores)} AS scores,`,
    `      ${kept} AS probabilities`,
    `      FROM ML.PREDICT(MODEL ${tableRef(spec, spec.model.name)}, (`,
    `        SELECT o.uri, o.generation, ${featureSql(spec, model, 'o')}`,
    `        FROM ${tableRef(spec, spec.objectTable)} AS o`,
    `        JOIN ${pending} AS q ON q.uri = o.uri AND q.generation = o.generation`,
    `        WHERE ${todo(spec, 'pending', slice)}${withinBounds('o', slice)}`,
    '      )) AS p',
    '    ) AS s',
    '  ) AS t',
    `  CROSS JOIN (SELECT ARRAY_AGG(STRUCT(index, label)) AS labels FROM (SELECT index, ANY_VALUE(label) AS label FROM ${tableRef(spec, results.labelsTable)} WHERE model_version = @model_version GROUP BY index)) AS l`,
    ') AS r;',
    '',
    `${supersededFailuresSql(spec, slice)};`,
    '',
    batchCountsSql(spec, slice),
  ].join('\n');
}

/**
 * Failures recorded by earlier runs for objects this run has written a row for (a
 * prediction, or a new failure): each object keeps one row, in one table.
 */
export function supersededFailuresSql(spec: RunSpec, slice: BatchSlice): string {
  const { results } = spec;
  const thisRun = (table: string) =>
    `SELECT AS STRUCT x.uri, x.generation FROM ${tableRef(spec, table)} AS x WHERE x.model_version = @model_version AND x.run_id = @run_id${withinBounds('x', slice)}`;
  return [
    `DELETE FROM ${tableRef(spec, results.errorsTable)}`,
    `WHERE model_version = @model_version AND run_id != @run_id${slice.ranks ? ' AND uri BETWEEN @uri_lo AND @uri_hi' : ''}`,
    `  AND STRUCT(uri, generation) IN (${thisRun(results.table)} UNION ALL ${thisRun(results.errorsTable)})`,
  ].join('\n');
}

/** What this run wrote for the slice: one row per label, and the failures. */
export function batchCountsSql(spec: RunSpec, slice: BatchSlice): string {
  const mine = `r.model_version = @model_version AND r.run_id = @run_id AND ${slicePredicate('r', slice)}`;
  return [
    `SELECT 'label' AS kind, label, COUNT(*) AS n FROM ${tableRef(spec, spec.results.table)} AS r WHERE ${mine} GROUP BY label`,
    'UNION ALL',
    `SELECT 'failed' AS kind, '' AS label, COUNT(*) AS n FROM ${tableRef(spec, spec.results.errorsTable)} AS r WHERE ${mine}`,
  ].join('\n');
}

/** How many objects of a slice are still to predict in this run: a failing slice of one is a bad object. */
export function countSliceSql(spec: RunSpec, slice: BatchSlice, runId: string): string {
  return `SELECT COUNT(*) AS pending FROM ${tableRef(spec, pendingTableName(runId))} AS q\nWHERE ${todo(spec, 'pending', slice)}`;
}

/** Records the slice's remaining objects as failed with @error (a STRING parameter), replacing earlier failures. */
export function recordFailuresSql(spec: RunSpec, slice: BatchSlice, runId: string): string {
  return [
    `INSERT INTO ${tableRef(spec, spec.results.errorsTable)} (uri, generation, model_version, error, kind, run_id, failed_at)`,
    "SELECT q.uri, q.generation, @model_version, @error, 'permanent', @run_id, CURRENT_TIMESTAMP()",
    `FROM ${tableRef(spec, pendingTableName(runId))} AS q`,
    `WHERE ${todo(spec, 'pending', slice)};`,
    '',
    `${supersededFailuresSql(spec, slice)};`,
  ].join('\n');
}

/** A BigQuery job ID for a batch: derived from run, batch and attempt, never random. */
export function batchJobId(runId: string, slice: BatchSlice, attempt: number): string {
  const split = slice.split?.length ? `_s${slice.split.join('')}` : '';
  return `objinfer_${runId.replace(/[^A-Za-z0-9_-]/g, '_')}_b${slice.index}of${slice.count}${split}_a${attempt}`;
}

/** Results newest first, with the filters of `objinfer results` (parameters as named). */
export function readResultsSql(spec: RunSpec, where: string[], limit?: number): string {
  return [
    `SELECT uri, generation, model_version, label, score, top_k, run_id, predicted_at FROM ${tableRef(spec, spec.results.table)} AS t`,
    where.length ? `WHERE ${where.join(' AND ')}` : '',
    'ORDER BY predicted_at DESC, uri',
    limit === undefined ? '' : `LIMIT ${Math.max(0, Math.floor(limit))}`,
  ]
    .filter(Boolean)
    .join('\n');
}

export function readErrorsSql(spec: RunSpec, where: string[], limit?: number): string {
  return [
    `SELECT uri, generation, model_version, error, kind, run_id, failed_at FROM ${tableRef(spec, spec.results.errorsTable)} AS t`,
    where.length ? `WHERE ${where.join(' AND ')}` : '',
    'ORDER BY failed_at DESC, uri',
    limit === undefined ? '' : `LIMIT ${Math.max(0, Math.floor(limit))}`,
  ]
    .filter(Boolean)
    .join('\n');
}

/** Loads @labels (ARRAY<STRING>) for @model_version in one atomic statement, once. */
export function loadLabelsSql(spec: RunSpec): string {
  const table = tableRef(spec, spec.results.labelsTable);
  return [
    `INSERT INTO ${table} (model_version, index, label)`,
    'SELECT @model_version, i, label FROM UNNEST(@labels) AS label WITH OFFSET AS i',
    `WHERE NOT EXISTS (SELECT 1 FROM ${table} AS x WHERE x.model_version = @model_version)`,
  ].join('\n');
}
