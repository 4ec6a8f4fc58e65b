/**
 * Planning and running batches locally. A batch is the objects whose `md5_number(uri) % k`
 * is its index (narrowed further by a second hash when it had to be split), that have no
 * prediction and no standing failure for the prediction version. Each chunk of images
 * (inference.ts) is written in one transaction, so a crash leaves all of its rows or none.
 */
import { DOUBLE, INTEGER, LIST, STRUCT, VARCHAR, structValue } from '@duckdb/node-api';
import type { BatchPlan, BatchProgress, BatchRequest, BatchResult, BatchSlice } from '../../workflows/contract';
import type { LocalContext } from './context';
import { chunkCount, classifyInChunks, type Failure, type PendingObject, type Prediction } from './inference';
import { softmax } from '../common/model';
import { cpuTurn, topK } from './runtime';
import { TOP_K_TYPE, uriHashSql } from './schema';
import type { Db } from './warehouse';

const TOP_K = LIST(STRUCT({ label: VARCHAR, index: INTEGER, score: DOUBLE }));
const SCORES = LIST(DOUBLE);

/** Rows for (uri, generation, version) in `table`: the key every results and errors row has. */
function sameObject(ctx: LocalContext, table: string, alias: string): string {
  return `SELECT 1 FROM ${ctx.table(table)} x WHERE x.uri = ${alias}.uri AND x.generation = ${alias}.generation AND x.model_version = $1`;
}

/**
 * Objects of `alias` still to do for the version in $1: no prediction, and no failure that
 * stands. Transient failures never stand (the next run retries them); permanent ones stand
 * unless the run retries failures.
 */
function pendingPredicate(ctx: LocalContext, alias: string): string {
  const { results, retryFailed } = ctx.spec;
  const noResult = `NOT EXISTS (${sameObject(ctx, results.table, alias)})`;
  if (retryFailed) return noResult;
  return `${noResult} AND NOT EXISTS (${sameObject(ctx, results.errorsTable, alias)} AND coalesce(x.kind, 'permanent') = 'permanent')`;
}

/**
 * The slice's objects: `md5_number(uri) % $2 = $3` (`$2` batches, this one `$3`), then one
 * bit per split level. DuckDB divides its 128-bit `md5_number` in software, 5.4 µs a row, so
 * the remainder is taken from the hash's two 64-bit halves, with the same result. With
 * `stored`, the halves are read from the object table's columns (schema.ts); elsewhere, and
 * for a row that lacks them, the URI is hashed.
 */
function slicePredicate(alias: string, slice: BatchSlice, stored: boolean): string {
  const uri = `${alias}.uri`;
  const hashed = uriHashSql(uri);
  const [high, low] = stored
    ? [`coalesce(${alias}.uri_hash_high, ${hashed.high})`, `coalesce(${alias}.uri_hash_low, ${hashed.low})`]
    : [hashed.high, hashed.low];
  const clauses = [`${sliceIndexSql(high, low, slice.count, 'CAST($2 AS UBIGINT)')} = CAST($3 AS UBIGINT)`];
  (slice.split ?? []).forEach((bit, level) => clauses.push(`${splitBitSql(`'objinfer-split-${level}:' || ${uri}`)} = ${bit === 1 ? 1 : 0}`));
  return clauses.join(' AND ');
}

/**
 * `md5_number(text) % count` from the hash's halves (`uriHashSql`): ((high % k) * (2^64 % k)
 * + low % k) % k, exact in UBIGINT for k <= 2^32 (test/slices.test.ts checks it against
 * DuckDB's own). `k` is count as SQL (a parameter).
 */
export function sliceIndexSql(high: string, low: string, count: number, k = `CAST(${count} AS UBIGINT)`): string {
  if (!Number.isSafeInteger(count) || count < 1 || count > 2 ** 32) throw new RangeError(`batch count ${count} out of range`);
  const wrap = `CAST(${(1n << 64n) % BigInt(count)} AS UBIGINT)`;
  return `((${high} % ${k}) * ${wrap} + ${low} % ${k}) % ${k}`;
}

/** `md5_number(text) % 2`: the low half is enough, 2^64 being even. */
export function splitBitSql(text: string): string {
  return `${uriHashSql(text).low} % 2`;
}

function sliceArgs(version: string, slice: BatchSlice): [string, bigint, bigint] {
  return [version, BigInt(slice.count), BigInt(slice.index)];
}

/** Counts what still needs a prediction for this version and sizes the batches. */
export async function planBatches(ctx: LocalContext, modelVersion: string): Promise<BatchPlan> {
  const { objectTable, results, batch, retryFailed } = ctx.spec;
  const failedBefore = retryFailed ? 'false' : `EXISTS (${sameObject(ctx, results.errorsTable, 'o')} AND coalesce(x.kind, 'permanent') = 'permanent')`;
  const counts = await ctx.use((db) =>
    db.one<{ seen: bigint; done: bigint; failed: bigint }>(
      `SELECT count(*) AS seen,
              count(*) FILTER (WHERE EXISTS (${sameObject(ctx, results.table, 'o')})) AS done,
              count(*) FILTER (WHERE NOT EXISTS (${sameObject(ctx, results.table, 'o')}) AND ${failedBefore}) AS failed
       FROM ${ctx.table(objectTable)} o`,
      [modelVersion],
    ),
  );
  const objectsSeen = Number(counts?.seen ?? 0);
  const alreadyDone = Number(counts?.done ?? 0);
  const failed = Number(counts?.failed ?? 0);
  const pending = objectsSeen - alreadyDone - failed;
  return { modelVersion, objectsSeen, alreadyDone, failedBefore: failed, pending, batchCount: Math.ceil(pending / batch.size) };
}

async function pendingObjects(ctx: LocalContext, db: Db, request: BatchRequest): Promise<PendingObject[]> {
  return db.all<PendingObject & Record<string, unknown>>(
    `SELECT o.uri, o.generation, o.size, o.stat FROM ${ctx.table(ctx.spec.objectTable)} o
     WHERE ${slicePredicate('o', request.slice, await storesUriHashes(ctx, db))} AND ${pendingPredicate(ctx, 'o')} ORDER BY o.uri`,
    sliceArgs(request.modelVersion, request.slice),
  );
}

/** Object tables known to have the URI hash columns, by warehouse file and table. */
const hashedObjectTables = new Set<string>();

/**
 * Whether the object table has the URI hash columns. One made by an earlier objinfer gets
 * them at the next listing; a run that was past its listing when its workers were upgraded
 * hashes the URIs instead until then.
 */
async function storesUriHashes(ctx: LocalContext, db: Db): Promise<boolean> {
  const key = `${ctx.spec.local.warehouse}\0${ctx.spec.dataset}.${ctx.spec.objectTable}`;
  if (hashedObjectTables.has(key)) return true;
  const row = await db.one<{ n: bigint }>(
    `SELECT count(*) AS n FROM information_schema.columns WHERE table_catalog = current_database() AND table_schema = $1 AND table_name = $2
       AND column_name IN ('uri_hash_high', 'uri_hash_low')`,
    [ctx.spec.dataset, ctx.spec.objectTable],
  );
  if (Number(row?.n ?? 0) !== 2) return false;
  hashedObjectTables.add(key);
  return true;
}

/** A batch's warehouse work closes the file at once, so that readers in other processes get in between (`objinfer results` while a run goes on). */
const RELEASE_NOW = { release: 'now' } as const;

export async function predictBatch(
  ctx: LocalContext,
  request: BatchRequest,
  onProgress?: (progress: BatchProgress) => void,
  signal?: AbortSignal,
): Promise<BatchResult> {
  // Warehouse work takes a CPU turn too (see cpuTurn): beside an inference run it would stall it.
  const objects = await cpuTurn('warehouse', () =>
    ctx.use(async (db) => {
      await ctx.assertCanRead(db, ctx.imageBuckets);
      return pendingObjects(ctx, db, request);
    }, RELEASE_NOW),
  );
  onProgress?.({ pending: objects.length, imagesDone: 0 });
  const labels = await ctx.labelsOf(request.modelVersion, request.model.classCount);
  const chunks = classifyInChunks(objects, request.model, {
    preserveAspectRatio: ctx.spec.model.preserveAspectRatio,
    onProgress: (imagesDone) => onProgress?.({ pending: objects.length, imagesDone }),
    signal,
  });
  // Each chunk's rows land as they are ready: a worker lost mid-batch redoes only the rest.
  // A chunk's rows are written while the next chunk decodes (both may share a CPU turn); the
  // writes themselves stay in order. The last write also counts the batch, saving the
  // warehouse one more open.
  const last = chunkCount(objects.length) - 1;
  let index = 0;
  let writing: Promise<BatchResult | undefined> = Promise.resolve(undefined);
  let writeFailed: { error: unknown } | undefined;
  try {
    for await (const { predictions, failures } of chunks) {
      if (writeFailed) throw writeFailed.error; // rows that cannot land: stop before decoding more
      signal?.throwIfAborted();
      const isLast = index++ === last;
      writing = writing.then(() =>
        cpuTurn('warehouse', () =>
          oneWriterAtATime(ctx.spec.local.warehouse, () =>
            ctx.use(async (db) => {
              await db.transaction(() => writeRows(ctx, db, request, labels, predictions, failures));
              return isLast ? countSlice(ctx, db, request) : undefined;
            }, RELEASE_NOW),
          ),
        ),
      );
      writing.catch((error: unknown) => (writeFailed ??= { error }));
    }
  } finally {
    await writing.catch(() => undefined); // no write is left running behind the activity's back
  }
  return (await writing) ?? cpuTurn('warehouse', () => ctx.use((db) => countSlice(ctx, db, request), RELEASE_NOW));
}

const resultWrites = new Map<string, Promise<unknown>>();

/**
 * Results writes in this process, one at a time per warehouse file, so that each one's
 * check for rows already there sees the rows of the one before (two attempts of a batch can
 * overlap in one worker). Other processes cannot write meanwhile: DuckDB lets one process
 * at a time attach the file for writing.
 */
function oneWriterAtATime<T>(warehouse: string, write: () => Promise<T>): Promise<T> {
  const mine = (resultWrites.get(warehouse) ?? Promise.resolve()).then(write);
  const settled = mine.catch(() => undefined);
  resultWrites.set(warehouse, settled);
  void settled.then(() => resultWrites.get(warehouse) === settled && resultWrites.delete(warehouse));
  return mine;
}

/**
 * Results go through a temporary table filled by DuckDB's appender with explicit types
 * (a score of exactly 1 must not make the list's type INTEGER), then into the results
 * table unless a row for the same (uri, generation, version) is there: a retried run of
 * images adds nothing twice (the table has no index to do it: see resultsDdl). A prediction
 * replaces an earlier failure of the same object (a retry that now succeeds).
 */
async function writeRows(ctx: LocalContext, db: Db, request: BatchRequest, labels: string[], predictions: Prediction[], failures: Failure[]): Promise<void> {
  const { results } = ctx.spec;
  if (predictions.length > 0) {
    await db.run(
      `CREATE OR REPLACE TEMP TABLE incoming (uri VARCHAR, generation BIGINT, label VARCHAR, score DOUBLE, top_k ${TOP_K_TYPE}, probabilities DOUBLE[])`,
    );
    await db.append('incoming', (row) => {
      for (const { object, scores } of predictions) {
        // Ranked as probabilities: logits through a softmax; the raw outputs are what keepProbabilities keeps.
        const best = topK(request.model.scores === 'logits' ? softmax(scores) : scores, labels, results.topK);
        row.appendVarchar(object.uri);
        row.appendBigInt(object.generation);
        row.appendVarchar(best[0]!.label);
        row.appendDouble(best[0]!.score);
        row.appendList(
          best.map((b) => structValue({ label: b.label, index: b.index, score: b.score })),
          TOP_K,
        );
        if (results.keepProbabilities) row.appendList(Array.from(scores), SCORES);
        else row.appendNull();
        row.endRow();
      }
    });
    await db.run(
      `INSERT INTO ${ctx.table(results.table)} (uri, generation, model_version, label, score, top_k, probabilities, run_id, predicted_at)
       SELECT uri, generation, $1, label, score, top_k, probabilities, $2, now() FROM incoming i
       WHERE NOT EXISTS (${sameObject(ctx, results.table, 'i')})`,
      [request.modelVersion, request.runId],
    );
    await db.run(
      `DELETE FROM ${ctx.table(results.errorsTable)} e USING incoming i
       WHERE e.uri = i.uri AND e.generation = i.generation AND e.model_version = $1`,
      [request.modelVersion],
    );
  }
  await db.insertRows(
    `INSERT OR REPLACE INTO ${ctx.table(results.errorsTable)} (uri, generation, model_version, error, kind, run_id, failed_at)`,
    ['', '', '', '', '', '', '::TIMESTAMPTZ'],
    failures.map(({ object, error, kind }) => [object.uri, object.generation, request.modelVersion, error, kind, request.runId, new Date().toISOString()]),
  );
}

/** Records every pending object of the slice as failed for good (narrowing isolated it). */
export async function recordUnprocessable(ctx: LocalContext, request: BatchRequest, reason: string): Promise<BatchResult> {
  const { objectTable, results } = ctx.spec;
  return ctx.use(async (db) => {
    await db.run(
      `INSERT OR REPLACE INTO ${ctx.table(results.errorsTable)} (uri, generation, model_version, error, kind, run_id, failed_at)
       SELECT o.uri, o.generation, $1, $4, 'permanent', $5, now() FROM ${ctx.table(objectTable)} o
       WHERE ${slicePredicate('o', request.slice, await storesUriHashes(ctx, db))} AND ${pendingPredicate(ctx, 'o')}`,
      [...sliceArgs(request.modelVersion, request.slice), reason, request.runId],
    );
    return countSlice(ctx, db, request);
  });
}

/** Counts from the tables, so a retried batch reports what its run wrote, not what this attempt did. */
async function countSlice(ctx: LocalContext, db: Db, request: BatchRequest): Promise<BatchResult> {
  const { results } = ctx.spec;
  const args = [...sliceArgs(request.modelVersion, request.slice), request.runId];
  const where = `WHERE r.model_version = $1 AND ${slicePredicate('r', request.slice, false)} AND r.run_id = $4`;
  const labelRows = await db.all<{ label: string; n: bigint }>(`SELECT label, count(*) AS n FROM ${ctx.table(results.table)} r ${where} GROUP BY label`, args);
  const failed = await db.one<{ n: bigint }>(`SELECT count(*) AS n FROM ${ctx.table(results.errorsTable)} r ${where}`, args);
  const labelCounts = Object.fromEntries(labelRows.map((r) => [r.label, Number(r.n)]));
  return {
    predicted: Object.values(labelCounts).reduce((a, b) => a + b, 0),
    failed: Number(failed?.n ?? 0),
    labelCounts,
  };
}
