/** DDL for the local warehouse: the tables of DESIGN §4 plus objinfer's own bookkeeping. */
import { quote } from './warehouse';

export const TOP_K_TYPE = 'STRUCT(label VARCHAR, "index" INTEGER, score DOUBLE)[]';

/** objinfer's own records (the `_objinfer` schema): what a real project's APIs would remember. */
export const BOOKKEEPING_DDL = [
  'CREATE SCHEMA IF NOT EXISTS _objinfer',
  `CREATE TABLE IF NOT EXISTS _objinfer.datasets (
     name VARCHAR PRIMARY KEY, location VARCHAR NOT NULL, created_at TIMESTAMPTZ NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS _objinfer.connections (
     project VARCHAR, location VARCHAR, name VARCHAR, service_account VARCHAR NOT NULL,
     created_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (project, location, name))`,
  `CREATE TABLE IF NOT EXISTS _objinfer.grants (
     bucket VARCHAR, member VARCHAR, role VARCHAR, granted_at TIMESTAMPTZ NOT NULL,
     PRIMARY KEY (bucket, member, role))`,
  `CREATE TABLE IF NOT EXISTS _objinfer.buckets (path VARCHAR PRIMARY KEY, created_at TIMESTAMPTZ NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS _objinfer.object_tables (
     dataset VARCHAR, name VARCHAR, connection VARCHAR NOT NULL, source_uris VARCHAR[] NOT NULL,
     PRIMARY KEY (dataset, name))`,
  `CREATE TABLE IF NOT EXISTS _objinfer.models (
     dataset VARCHAR, name VARCHAR, version VARCHAR NOT NULL, model_type VARCHAR NOT NULL,
     model_path VARCHAR NOT NULL, created_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (dataset, name))`,
];

function table(dataset: string, name: string): string {
  return `${quote(dataset)}.${quote(name)}`;
}

/**
 * The object table. `stat` (mtime, ctime and inode, in nanoseconds) is how a later listing
 * notices bytes replaced under an unchanged mtime: ctime cannot be set back by `touch -r`
 * or sync tools. `md5_hash` is absent for objects too large to decode. `uri_hash_high` and
 * `uri_hash_low` are the halves of `md5_number(uri)`, which says what batch an object is in
 * (predict.ts): stored, so that a batch does not hash every object of the bucket to find its
 * own (2.9 s per batch over a million objects; docs/benchmarks.md).
 */
export function objectTableDdl(dataset: string, name: string): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS ${table(dataset, name)} (
      uri VARCHAR PRIMARY KEY, generation BIGINT NOT NULL, content_type VARCHAR, size BIGINT NOT NULL,
      md5_hash VARCHAR, updated TIMESTAMPTZ NOT NULL, stat VARCHAR, uri_hash_high UBIGINT, uri_hash_low UBIGINT)`,
    `ALTER TABLE ${table(dataset, name)} ADD COLUMN IF NOT EXISTS stat VARCHAR`,
    `ALTER TABLE ${table(dataset, name)} ADD COLUMN IF NOT EXISTS uri_hash_high UBIGINT`,
    `ALTER TABLE ${table(dataset, name)} ADD COLUMN IF NOT EXISTS uri_hash_low UBIGINT`,
  ];
}

/**
 * The halves of `md5_number(text)` as SQL: md5_number = high * 2^64 + low, where DuckDB
 * names high `md5_number_lower` and low `md5_number_upper`.
 */
export function uriHashSql(text: string): { high: string; low: string } {
  return { high: `md5_number_lower(${text})`, low: `md5_number_upper(${text})` };
}

/** Fills in the URI hashes of rows that lack them: every row of a table made before them. */
export function objectHashesSql(dataset: string, name: string): string {
  const { high, low } = uriHashSql('uri');
  return `UPDATE ${table(dataset, name)} SET uri_hash_high = ${high}, uri_hash_low = ${low} WHERE uri_hash_high IS NULL OR uri_hash_low IS NULL`;
}

const RESULT_COLUMNS = 'uri, generation, model_version, label, score, top_k, probabilities, run_id, predicted_at';

/**
 * The results table, keyed by (uri, generation, model_version) without a PRIMARY KEY: DuckDB
 * saves a table's whole index at every checkpoint, and a batch checkpoints after each run of
 * images (it detaches the file so that readers get in). With 100 000 rows a write of 25 rows
 * took 159 ms of CPU (its checkpoint 135) against 27 without the index, and 200 new images ran
 * at 30.2 img/s against 31.7 (docs/benchmarks.md). Writes keep the key themselves (predict.ts: one writer per
 * process, an anti-join; another process cannot write while this one has the file).
 */
export function resultsDdl(dataset: string, name: string): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS ${table(dataset, name)} (
      uri VARCHAR NOT NULL, generation BIGINT NOT NULL, model_version VARCHAR NOT NULL,
      label VARCHAR NOT NULL, score DOUBLE NOT NULL, top_k ${TOP_K_TYPE} NOT NULL,
      probabilities FLOAT[], run_id VARCHAR NOT NULL, predicted_at TIMESTAMPTZ NOT NULL)`,
  ];
}

/** Rebuilds a results table made with a PRIMARY KEY (before the above) without it, rows kept; run in one transaction. */
export function resultsWithoutIndex(dataset: string, name: string): string[] {
  const rebuilt = `${name}__objinfer_rebuild`;
  return [
    ...resultsDdl(dataset, rebuilt),
    `INSERT INTO ${table(dataset, rebuilt)} (${RESULT_COLUMNS}) SELECT ${RESULT_COLUMNS} FROM ${table(dataset, name)}`,
    `DROP TABLE ${table(dataset, name)}`,
    `ALTER TABLE ${table(dataset, rebuilt)} RENAME TO ${quote(name)}`,
  ];
}

/** `kind`: permanent (the bytes cannot be classified) or transient (could not be read now; retried by the next run). */
export function errorsDdl(dataset: string, name: string): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS ${table(dataset, name)} (
      uri VARCHAR NOT NULL, generation BIGINT NOT NULL, model_version VARCHAR NOT NULL,
      error VARCHAR NOT NULL, run_id VARCHAR NOT NULL, failed_at TIMESTAMPTZ NOT NULL, kind VARCHAR DEFAULT 'permanent',
      PRIMARY KEY (uri, generation, model_version))`,
    `ALTER TABLE ${table(dataset, name)} ADD COLUMN IF NOT EXISTS kind VARCHAR DEFAULT 'permanent'`,
  ];
}

export function labelsDdl(dataset: string, name: string): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS ${table(dataset, name)} (
      model_version VARCHAR NOT NULL, "index" INTEGER NOT NULL, label VARCHAR NOT NULL,
      PRIMARY KEY (model_version, "index"))`,
  ];
}
