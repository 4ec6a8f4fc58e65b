/**
 * TEST-ONLY: what the BigQuery emulator cannot do, done around it, and nothing more.
 *
 * The emulator has no object tables, connections, imported models or ML functions. So:
 * - an object table (`CREATE EXTERNAL TABLE ... WITH CONNECTION`) becomes a plain table in
 *   the emulator with the object table's columns, filled by listing Cloud Storage (the real
 *   fake-gcs-server) through the connection's service account: a missing or fresh grant
 *   fails the listing with Google's propagation message. With metadata caching MANUAL the
 *   listing happens on `CALL BQ.REFRESH_EXTERNAL_METADATA_CACHE`, else before every query;
 * - `CREATE MODEL` registers the model (its files must exist in Cloud Storage);
 * - `ML.PREDICT(MODEL m, (subquery))` is replaced by the subquery with the model's output
 *   column joined from `_shim_scores` (deterministic scores per object, made here), and the
 *   feature expression `ML.RESIZE_IMAGE(ML.DECODE_IMAGE(o.data), ...)` by the object's URI.
 *   An object whose bytes are not a JPEG, PNG or BMP makes the engine raise an error, so
 *   the whole query fails, as BigQuery's does.
 * Every other character of every statement runs in the emulator as the backend wrote it.
 * Query parameters are written into the statement as typed literals, because the emulator
 * ignores the types they are declared with (a known quirk).
 */
import type { BigQuery } from '@google-cloud/bigquery';
import sharp from 'sharp';
import type { StandIn } from './standIn';

export const DECODE_FAILURE_MARKER = 'objinfer-shim-decode:';

export interface ObjectTable {
  reference: string;
  sourceUris: string[];
  connection: string;
  metadataCacheMode?: string;
  refreshed: boolean;
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
    this.objectTables.set(reference, { reference, sourceUris, connection, metadataCacheMode, refreshed: false });
    await this.emulatorRun(
      `CREATE OR REPLACE TABLE \`${reference}\` (uri STRING, generation INT64, content_type STRING, size INT64, md5_hash STRING, updated TIMESTAMP)`,
    );
  }

  /** `CALL BQ.REFRESH_EXTERNAL_METADATA_CACHE('project.dataset.table')`. */
  async refresh(sql: string): Promise<void> {
    const reference = sql.match(/^CALL BQ\.REFRESH_EXTERNAL_METADATA_CACHE\('([^']+)'\)$/)?.[1];
    const table = reference && this.objectTables.get(reference);
    if (!table) throw Object.assign(new Error(`Not found: Table ${reference}`), { reason: 'notFound' });
    await this.list(table);
  }

  /** `CREATE OR REPLACE MODEL ... OPTIONS (model_type = ..., model_path = ...)`. */
  async createModel(sql: string): Promise<void> {
    const m = sql.match(/^CREATE OR REPLACE MODEL `([^`]+)`\s+OPTIONS \(model_type = '(\w+)', model_path = '([^']+)'\)$/);
    if (!m) throw new Error(`shim: not a CREATE MODEL statement it knows: ${sql}`);
    const [, reference, modelType, path] = m as unknown as [string, string, string, string];
    if ((await this.listGcs(path.replace(/\*$/, ''))).length === 0) {
      throw Object.assign(new Error(`model_path ${path} matches no files`), { reason: 'invalid' });
    }
    this.standIn.models.set(reference, { modelType, labels: {}, path });
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
      const bytes = new Uint8Array(
        await (await fetch(`${this.options.gcsUrl}/download/storage/v1/b/${o.bucket}/o/${encodeURIComponent(o.name)}?alt=media`)).arrayBuffer(),
      );
      const decodable = await decodes(bytes);
      const scores = shimScores(o.name, this.options.labels).map((s) => String(s));
      rows.push(`(${literal(`gs://${o.bucket}/${o.name}`)}, ${decodable}, [${scores.map((s) => `CAST(${s} AS FLOAT64)`).join(', ')}])`);
    }
    if (rows.length) await this.emulatorRun(`INSERT INTO \`${dataset}._shim_scores\` (uri, decodable, scores) VALUES ${rows.join(', ')}`);
  }

  /** Object tables a statement reads that have no cached listing: list them first (no metadata caching). */
  async beforeQuery(sql: string): Promise<void> {
    for (const table of this.objectTables.values()) {
      if (!sql.includes(`\`${table.reference}\``)) continue;
      if (table.metadataCacheMode === 'MANUAL' && table.refreshed) continue;
      await this.list(table);
    }
  }

  /** Replaces `ML.PREDICT(MODEL m, (subquery))` as the header says; the rest is left as written. */
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
    const columns = this.standIn.options.modelColumns ?? { feature: 'input_1', labels: ['activation_49'] };
    const feature = /ML\.RESIZE_IMAGE\(ML\.DECODE_IMAGE\((\w+)\.data\), \d+, \d+, (TRUE|FALSE)\) AS (\w+)/;
    const found = subquery.match(feature);
    if (!found) throw new Error('shim: the subquery must give ML.RESIZE_IMAGE(ML.DECODE_IMAGE(alias.data), H, W, preserve) AS <feature>');
    if (found[3] !== columns.feature) {
      throw Object.assign(
        new Error(`Invalid table-valued function ML.PREDICT: the model's feature column is ${columns.feature}, the query gives ${found[3]}`),
        { reason: 'invalidQuery' },
      );
    }
    const rewritten = subquery.replace(feature, `${found[1]}.uri AS ${found[3]}`);
    const dataset = reference.split('.').slice(0, 2).join('.');
    const outputs = columns.labels.map((label) => `IF(z.decodable, z.scores, ERROR(CONCAT(${literal(DECODE_FAILURE_MARKER)}, s.uri))) AS ${label}`).join(', ');
    const replacement = `(SELECT s.*, ${outputs} FROM (${rewritten}) AS s LEFT JOIN \`${dataset}._shim_scores\` AS z ON z.uri = s.uri)`;
    return sql.slice(0, start) + replacement + sql.slice(close + 1);
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
    out = out.replace(new RegExp(`@${p.name}\\b`, 'g'), value);
  }
  return out;
}
