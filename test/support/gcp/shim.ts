/**
 * TEST-ONLY: what the BigQuery emulator cannot do, done around it, and nothing more.
 *
 * The emulator has no object tables, connections, imported models or ML functions. So:
 * - an object table (`CREATE EXTERNAL TABLE ... WITH CONNECTION`) becomes a plain table in
 *   the emulator with the object table's columns, filled by listing Cloud Storage (the real
 *   fake-gcs-server) through the connection's service account: a missing or fresh grant
 *   fails the listing with Google's propagation message. With metadata caching MANUAL the
 *   listing happens on `CALL BQ.REFRESH_EXTERNAL_METADATA_CACHE`, else before every query;
 * - `CREATE MODEL` reads the model's files from Cloud Storage with the model's own engine
 *   (ONNX Runtime, TensorFlow): its feature and output names come from there;
 * - `ML.PREDICT(MODEL m, (subquery))` is replaced by the subquery with the model's output
 *   columns joined, and the feature expression `ML.RESIZE_IMAGE(ML.DECODE_IMAGE(o.data), ...)`
 *   by the object's URI. The outputs of an ONNX model are the shim's own deterministic scores
 *   (`_shim_scores`, made here from each object's name); those of a SavedModel are
 *   TensorFlow's, running it on each object as decoded and resized by TensorFlow.
 *   An object whose bytes are not a JPEG, PNG or BMP makes the engine raise an error, so
 *   the whole query fails, as BigQuery's does.
 * The rest of each statement runs in the emulator as the backend wrote it, but for the
 * rewrites named below (parameters, MOD of fingerprints).
 * Query parameters are written into the statement as typed literals, because the emulator
 * ignores the types they are declared with (a known quirk).
 */
import type { BigQuery } from '@google-cloud/bigquery';
import sharp from 'sharp';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importModel, runSavedModel } from './importedModel';
import type { Model, StandIn } from './standIn';

/** The feature expression of an ML.PREDICT subquery: alias, preserve flag, height, width, feature name. */
const FEATURE = /ML\.RESIZE_IMAGE\(ML\.DECODE_IMAGE\((\w+)\.data\), (\d+), (\d+), (TRUE|FALSE)\) AS (\w+)/;

/** The table of a SavedModel's answers, per model. */
function scoresTable(reference: string): string {
  const [project, dataset, id] = reference.split('.');
  return `${project}.${dataset}._shim_tf_${id}`;
}

export const DECODE_FAILURE_MARKER = 'objinfer-shim-decode:';

export interface ObjectTable {
  reference: string;
  sourceUris: string[];
  connection: string;
  metadataCacheMode?: string;
  /** max_staleness, encoded as tables.get gives it (`Y-M D H:M:S`). */
  maxStaleness?: string;
  refreshed: boolean;
  /** What the last listing found. */
  objects: GcsObject[];
  listing: number;
}

export interface ShimOptions {
  project: string;
  gcsUrl: string;
  /** Labels of the model, in output order: an object named `<label>-...` scores highest on it. */
  labels: string[];
}

/** A GoogleSQL string literal. */
export function literal(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n')}'`;
}

/**
 * The scores the shim's model gives an object: its label (the name's prefix) gets 0.9 and
 * the others share 0.1, decreasing with the class index, so the whole top-k is known.
 */
export function shimScores(name: string, labels: string[]): number[] {
  const base = name.split('/').pop()!.split('-')[0]!;
  const k = labels.indexOf(base);
  const n = labels.length;
  const others = labels.map((_, i) => (i === k ? 0 : n - i));
  const sum = others.reduce((a, b) => a + b, 0) || 1;
  return labels.map((_, i) => (i === k ? 0.9 : (0.1 * others[i]!) / sum));
}

/**
 * Whether ML.DECODE_IMAGE could decode the bytes, judged by libvips (sharp) for JPEG and
 * PNG and by the header for BMP (which libvips cannot read): not objinfer's own decoder.
 */
async function decodes(bytes: Uint8Array): Promise<boolean> {
  if (bytes[0] === 0x42 && bytes[1] === 0x4d) return bytes.length > 54;
  const jpegOrPng = (bytes[0] === 0xff && bytes[1] === 0xd8) || (bytes[0] === 0x89 && bytes[1] === 0x50);
  if (!jpegOrPng) return false;
  return sharp(bytes, { failOn: 'error' })
    .raw()
    .toBuffer()
    .then(
      () => true,
      () => false,
    );
}

interface GcsObject {
  bucket: string;
  name: string;
  generation: string;
  contentType?: string;
  size: string;
  md5Hash?: string;
  updated?: string;
}

/** Index of the parenthesis closing the one at `open`, skipping string literals. */
function closing(sql: string, open: number): number {
  let depth = 0;
  for (let i = open; i < sql.length; i++) {
    const c = sql[i];
    if (c === "'") {
      for (i++; i < sql.length && sql[i] !== "'"; i++) if (sql[i] === '\\') i++;
      continue;
    }
    if (c === '(') depth++;
    if (c === ')' && --depth === 0) return i;
  }
  throw new Error('shim: unbalanced parentheses');
}

export class BigQueryShim {
  readonly objectTables = new Map<string, ObjectTable>();
  /** How many times the shim listed Cloud Storage for an object table. */
  listings = 0;

  constructor(
    private readonly options: ShimOptions,
    private readonly emulator: BigQuery,
    private readonly standIn: StandIn,
  ) {}

  /** `CREATE OR REPLACE EXTERNAL TABLE ... WITH CONNECTION ... OPTIONS (object_metadata = 'SIMPLE', ...)`. */
  async createObjectTable(sql: string): Promise<void> {
    const m = sql.match(/^CREATE OR REPLACE EXTERNAL TABLE `([^`]+)`\s+WITH CONNECTION `([^`]+)`\s+OPTIONS \(([\s\S]+)\)$/);
    if (!m) throw new Error(`shim: not an object table statement: ${sql.split('\n')[0]}`);
    const [, reference, connection, options] = m as unknown as [string, string, string, string];
    if (!/object_metadata = 'SIMPLE'/.test(options)) throw new Error("shim: an object table needs object_metadata = 'SIMPLE'");
    if (!this.standIn.serviceAccountOf(connection)) throw Object.assign(new Error(`Not found: Connection ${connection}`), { reason: 'notFound' });
    const sourceUris = [...options.match(/uris = \[([^\]]*)\]/)![1]!.matchAll(/'((?:[^'\\]|\\.)*)'/g)].map((u) => u[1]!);
    const metadataCacheMode = options.match(/metadata_cache_mode = '(\w+)'/)?.[1];
    const days = options.match(/max_staleness = INTERVAL (\d+) DAY/)?.[1];
    const maxStaleness = days ? `0-0 ${days} 0:0:0` : undefined;
    this.objectTables.set(reference, { reference, sourceUris, connection, metadataCacheMode, maxStaleness, refreshed: false, objects: [], listing: 0 });
    // Emulator quirk: its CREATE OR REPLACE TABLE refuses a table that exists ("already created").
    const [, datasetId, tableId] = reference.split('.');
    const existing = this.emulator.dataset(datasetId!).table(tableId!);
    if ((await existing.exists())[0]) await existing.delete();
    await this.emulatorRun(`CREATE TABLE \`${reference}\` (uri STRING, generation INT64, content_type STRING, size INT64, md5_hash STRING, updated TIMESTAMP)`);
  }

  /** `CALL BQ.REFRESH_EXTERNAL_METADATA_CACHE('project.dataset.table')`. */
  async refresh(sql: string): Promise<void> {
    const reference = sql.match(/^CALL BQ\.REFRESH_EXTERNAL_METADATA_CACHE\('([^']+)'\)$/)?.[1];
    const table = reference && this.objectTables.get(reference);
    if (!table) throw Object.assign(new Error(`Not found: Table ${reference}`), { reason: 'notFound' });
    await this.list(table);
  }

  /**
   * `CREATE OR REPLACE MODEL ... OPTIONS (model_type = ..., model_path = ...)`: the model's
   * files are read from Cloud Storage and loaded by the model's own engine, which gives its
   * feature and output names (a model it cannot load is refused, as BigQuery refuses it).
   */
  async createModel(sql: string): Promise<void> {
    const m = sql.match(/^CREATE OR REPLACE MODEL `([^`]+)`\s+OPTIONS \(model_type = '(\w+)', model_path = '([^']+)'\)$/);
    if (!m) throw new Error(`shim: not a CREATE MODEL statement it knows: ${sql}`);
    const [, reference, modelType, path] = m as unknown as [string, string, string, string];
    const prefix = path.replace(/\*$/, '');
    const objects = await this.listGcs(prefix);
    if (objects.length === 0) throw Object.assign(new Error(`model_path ${path} matches no files`), { reason: 'invalid' });
    const files = new Map<string, Buffer>();
    const folder = prefix.replace(/^gs:\/\/[^/]+\//, '');
    for (const o of objects) files.set(o.name.slice(folder.length) || o.name, Buffer.from(await this.download(o)));
    const signature = await importModel(modelType, files).catch((error: Error) => {
      throw Object.assign(new Error(`Error while reading the ${modelType} model at ${path}: ${error.message}`), { reason: 'invalid' });
    });
    this.standIn.models.set(reference, { modelType, labels: {}, path, ...signature });
  }

  /** Lists an object table's objects through its connection and writes them into the emulator's table. */
  private async list(table: ObjectTable): Promise<void> {
    const serviceAccount = this.standIn.serviceAccountOf(table.connection);
    const objects: GcsObject[] = [];
    for (const uri of table.sourceUris) {
      const bucket = uri.replace('gs://', '').split('/')[0]!;
      const denied = this.standIn.readThroughConnection(bucket, serviceAccount);
      if (denied) throw Object.assign(new Error(denied), { reason: 'accessDenied' });
      const pattern = new RegExp(`^${uri.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
      for (const object of await this.listGcs(uri.split('*')[0]!)) if (pattern.test(`gs://${object.bucket}/${object.name}`)) objects.push(object);
    }
    this.listings++;
    table.refreshed = true;
    table.objects = objects;
    table.listing = this.listings;
    const rows = objects.map(
      (o) =>
        `(${literal(`gs://${o.bucket}/${o.name}`)}, ${Number(o.generation)}, ${o.contentType ? literal(o.contentType) : 'NULL'}, ${Number(o.size)}, ` +
        `${o.md5Hash ? literal(o.md5Hash) : 'NULL'}, TIMESTAMP ${literal(o.updated ?? new Date().toISOString())})`,
    );
    await this.emulatorRun(`DELETE FROM \`${table.reference}\` WHERE TRUE`);
    if (rows.length)
      await this.emulatorRun(`INSERT INTO \`${table.reference}\` (uri, generation, content_type, size, md5_hash, updated) VALUES ${rows.join(', ')}`);
    await this.writeScores(table.reference.split('.').slice(0, 2).join('.'), objects);
  }

  /** The shim model's answers for the listed objects, and which ones cannot be decoded. */
  private async writeScores(dataset: string, objects: GcsObject[]): Promise<void> {
    // The emulator answers IF NOT EXISTS of an existing table with an error: ignore that one.
    await this.emulatorRun(`CREATE TABLE IF NOT EXISTS \`${dataset}._shim_scores\` (uri STRING, decodable BOOL, scores ARRAY<FLOAT64>)`).catch(
      (error: Error) => {
        if (!/already created/.test(error.message)) throw error;
      },
    );
    await this.emulatorRun(`DELETE FROM \`${dataset}._shim_scores\` WHERE TRUE`);
    const rows: string[] = [];
    for (const o of objects) {
      const bytes = await this.download(o);
      const decodable = await decodes(bytes);
      const scores = shimScores(o.name, this.options.labels).map((s) => String(s));
      rows.push(`(${literal(`gs://${o.bucket}/${o.name}`)}, ${decodable}, [${scores.map((s) => `CAST(${s} AS FLOAT64)`).join(', ')}])`);
    }
    if (rows.length) await this.emulatorRun(`INSERT INTO \`${dataset}._shim_scores\` (uri, decodable, scores) VALUES ${rows.join(', ')}`);
  }

  /**
   * Before a statement runs: object tables it reads that have no cached listing are listed
   * (no metadata caching), and a SavedModel it calls has run on the objects listed.
   */
  async beforeQuery(sql: string): Promise<void> {
    for (const table of this.objectTables.values()) {
      if (!sql.includes(`\`${table.reference}\``)) continue;
      if (table.metadataCacheMode === 'MANUAL' && table.refreshed) continue;
      await this.list(table);
    }
    const reference = sql.match(/ML\.PREDICT\(MODEL `([^`]+)`/)?.[1];
    const model = reference ? this.standIn.models.get(reference) : undefined;
    if (model?.dir) await this.runSavedModel(reference!, model, sql);
  }

  /** Answers of a SavedModel, by TensorFlow, for the objects of the object tables the statement reads. */
  private readonly savedModelRuns = new Map<string, string>();

  private async runSavedModel(reference: string, model: Model, sql: string): Promise<void> {
    const feature = sql.match(FEATURE);
    if (!feature) return; // rewritePredict refuses it
    if (feature[4] === 'TRUE') throw new Error("shim: ML.RESIZE_IMAGE with preserve_aspect_ratio TRUE is not run by the shim's TensorFlow");
    const size: [number, number] = [Number(feature[2]), Number(feature[3])];
    const tables = [...this.objectTables.values()].filter((t) => sql.includes(`\`${t.reference}\``));
    const key = `${reference}|${size.join('x')}|${tables.map((t) => `${t.reference}@${t.listing}`).join(',')}`;
    const table = scoresTable(reference);
    if (this.savedModelRuns.get(table) === key) return;
    const dir = mkdtempSync(join(tmpdir(), 'objinfer-shim-images-'));
    const files = new Map<string, string>();
    for (const o of tables.flatMap((t) => t.objects)) {
      const path = join(dir, `${files.size}-${o.name.split('/').pop()}`);
      writeFileSync(path, await this.download(o));
      files.set(path, `gs://${o.bucket}/${o.name}`);
    }
    const answers = await runSavedModel(model.dir!, size, [...files.keys()]);
    const columns = model.outputs.map((name) => `${name} ARRAY<FLOAT64>`).join(', ');
    await this.emulatorRun(`CREATE OR REPLACE TABLE \`${table}\` (uri STRING, decodable BOOL, ${columns})`);
    const rows = [...files].map(([path, uri]) => {
      const answer = answers[path];
      const arrays = model.outputs.map((name) => (answer ? `[${answer[name]!.map((v) => `CAST(${v} AS FLOAT64)`).join(', ')}]` : '[]'));
      return `(${literal(uri)}, ${answer ? 'TRUE' : 'FALSE'}, ${arrays.join(', ')})`;
    });
    if (rows.length) await this.emulatorRun(`INSERT INTO \`${table}\` (uri, decodable, ${model.outputs.join(', ')}) VALUES ${rows.join(', ')}`);
    this.savedModelRuns.set(table, key);
  }

  /**
   * Replaces `ML.PREDICT(MODEL m, (subquery))` as the header says; the rest is left as
   * written. The feature must be the model's own; the outputs are its own names: the
   * shim's colour scores for an ONNX model, TensorFlow's answers for a SavedModel.
   */
  rewritePredict(sql: string): string {
    const start = sql.indexOf('ML.PREDICT(MODEL `');
    if (start < 0) return sql;
    const open = start + 'ML.PREDICT'.length;
    const close = closing(sql, open);
    const inner = sql.slice(open + 1, close);
    const m = inner.match(/^MODEL `([^`]+)`,\s*\(([\s\S]*)\)\s*$/);
    if (!m) throw new Error('shim: ML.PREDICT(MODEL `m`, (subquery)) expected');
    const [, reference, subquery] = m as unknown as [string, string, string];
    const model = this.standIn.models.get(reference);
    if (!model) throw Object.assign(new Error(`Not found: Model ${reference}`), { reason: 'notFound' });
    const found = subquery.match(FEATURE);
    if (!found) throw new Error('shim: the subquery must give ML.RESIZE_IMAGE(ML.DECODE_IMAGE(alias.data), H, W, preserve) AS <feature>');
    if (found[5] !== model.feature) {
      throw Object.assign(new Error(`Invalid table-valued function ML.PREDICT: the model's feature column is ${model.feature}, the query gives ${found[5]}`), {
        reason: 'invalidQuery',
      });
    }
    const rewritten = subquery.replace(FEATURE, `${found[1]}.uri AS ${found[5]}`);
    const dataset = reference.split('.').slice(0, 2).join('.');
    const table = model.dir ? scoresTable(reference) : `${dataset}._shim_scores`;
    const value = (name: string) => (model.dir ? `z.${name}` : 'z.scores');
    const outputs = model.outputs
      .map((name) => `IF(z.decodable, ${value(name)}, ERROR(CONCAT(${literal(DECODE_FAILURE_MARKER)}, s.uri))) AS ${name}`)
      .join(', ');
    const replacement = `(SELECT s.*, ${outputs} FROM (${rewritten}) AS s LEFT JOIN \`${table}\` AS z ON z.uri = s.uri)`;
    return sql.slice(0, start) + replacement + sql.slice(close + 1);
  }

  private async download(o: { bucket: string; name: string }): Promise<Uint8Array> {
    const response = await fetch(`${this.options.gcsUrl}/download/storage/v1/b/${o.bucket}/o/${encodeURIComponent(o.name)}?alt=media`);
    return new Uint8Array(await response.arrayBuffer());
  }

  private async emulatorRun(sql: string): Promise<void> {
    const [job] = await this.emulator.createQueryJob({ query: sql, useLegacySql: false });
    await job.getQueryResults();
  }

  private async listGcs(prefixUri: string): Promise<GcsObject[]> {
    const [bucket, ...rest] = prefixUri.replace('gs://', '').split('/');
    const out: GcsObject[] = [];
    let pageToken = '';
    do {
      const response = await fetch(
        `${this.options.gcsUrl}/storage/v1/b/${bucket}/o?prefix=${encodeURIComponent(rest.join('/'))}${pageToken ? `&pageToken=${pageToken}` : ''}`,
      );
      if (!response.ok) return out;
      const body = (await response.json()) as { items?: GcsObject[]; nextPageToken?: string };
      out.push(...(body.items ?? []).map((item) => ({ ...item, bucket: bucket! })));
      pageToken = body.nextPageToken ?? '';
    } while (pageToken);
    return out;
  }
}

/**
 * Emulator quirk: its MOD and ABS go through float64, so MOD(ABS(FARM_FINGERPRINT(x)), 2) of
 * a 64-bit fingerprint is always 0 there (the low bits are lost). BigQuery's are exact. The
 * same value is computed here exactly from the fingerprint's decimal digits, in two parts
 * that float64 holds: |f| = hi * 10^9 + lo.
 */
export function exactFingerprintMod(sql: string): string {
  let out = sql;
  for (;;) {
    const start = out.indexOf('MOD(ABS(FARM_FINGERPRINT(');
    if (start < 0) return out;
    const argOpen = start + 'MOD(ABS(FARM_FINGERPRINT'.length;
    const argClose = closing(out, argOpen);
    const expr = out.slice(argOpen + 1, argClose);
    const rest = out.slice(argClose).match(/^\)\), (\d+)\)/);
    if (!rest) throw new Error('shim: MOD(ABS(FARM_FINGERPRINT(x)), n) with a literal n expected');
    const n = rest[1]!;
    const digits = `LTRIM(CAST(FARM_FINGERPRINT(${expr}) AS STRING), '-')`;
    const hi = `CAST(IF(LENGTH(${digits}) > 9, SUBSTR(${digits}, 1, LENGTH(${digits}) - 9), '0') AS INT64)`;
    const lo = `CAST(SUBSTR(${digits}, GREATEST(LENGTH(${digits}) - 8, 1)) AS INT64)`;
    const exact = `MOD(MOD(${hi}, ${n}) * MOD(1000000000, ${n}) + MOD(${lo}, ${n}), ${n})`;
    out = out.slice(0, start) + exact + out.slice(argClose + rest[0].length);
  }
}

/** Query parameters written in as typed literals (the emulator ignores declared types). */
export function withParametersInline(
  sql: string,
  parameters: {
    name?: string;
    parameterType?: { type?: string; arrayType?: { type?: string } };
    parameterValue?: { value?: string; arrayValues?: { value?: string }[] };
  }[],
): string {
  let out = sql;
  for (const p of parameters) {
    const type = p.parameterType?.type;
    let value: string;
    if (type === 'STRING') value = literal(p.parameterValue?.value ?? '');
    else if (type === 'ARRAY' && p.parameterType?.arrayType?.type === 'STRING') {
      value = `ARRAY<STRING>[${(p.parameterValue?.arrayValues ?? []).map((v) => literal(v.value ?? '')).join(', ')}]`;
    } else throw new Error(`shim: parameter @${p.name} of type ${type}: the backend sends STRING and ARRAY<STRING> only`);
    out = out.replace(new RegExp(`@${p.name}\\b`, 'g'), () => value); // a function: "$" in a value is not a replacement pattern
  }
  return out;
}
