/**
 * The object table: a snapshot of the objects matching the source patterns, listed through
 * the connection. Like Cloud Storage, every write of an object makes a new generation;
 * unchanged objects keep theirs.
 *
 * Change detection: a file whose stat (mtime, ctime, inode) and size are unchanged is
 * unchanged. Otherwise its MD5 decides: the same bytes keep their generation (a chmod, a
 * copy of the same file); new bytes get a new one, even when the mtime was kept (`touch
 * -r`, sync tools), because ctime cannot be set back. Generations never repeat.
 */
import { listValue, type DuckDBValue } from '@duckdb/node-api';
import type { StepOutcome } from '../../workflows/contract';
import { MAX_IMAGE_BYTES } from '../../images/limits';
import type { LocalContext } from './context';
import { objectHashesSql, objectTableDdl } from './schema';
import { listObjects, md5Base64, type ObjectMetadata } from './storage';

interface KnownObject {
  uri: string;
  generation: bigint;
  size: bigint;
  md5_hash: string | null;
  stat: string | null;
  [key: string]: unknown;
}

/** Files hashed between yields (so heartbeats go out while a first run hashes many files). */
const HASH_SLICE = 200;

export async function ensureObjectTable(ctx: LocalContext): Promise<StepOutcome> {
  const { dataset, objectTable, sourceUris, connection } = ctx.spec;
  const table = ctx.table(objectTable);
  const known = await ctx.use(async (db) => {
    await ctx.assertCanRead(db, ctx.imageBuckets);
    for (const ddl of objectTableDdl(dataset, objectTable)) await db.run(ddl);
    const rows = await db.all<KnownObject>(`SELECT uri, generation, size, md5_hash, stat FROM ${table}`);
    return new Map(rows.map((r) => [r.uri, r]));
  });
  const { objects, warnings } = await listObjects(sourceUris);
  const changed: DuckDBValue[][] = [];
  let newGenerations = 0;
  let hashed = 0;
  for (const object of objects) {
    const previous = known.get(object.uri);
    if (previous && previous.stat === object.stat && previous.size === object.size) continue;
    if (++hashed % HASH_SLICE === 0) await new Promise((resume) => setImmediate(resume));
    const md5 = await hashIfDecodable(object);
    const sameBytes = previous && md5 !== null && previous.md5_hash === md5 && previous.size === object.size;
    const generation = sameBytes ? previous.generation : nextGeneration(object, previous);
    if (!sameBytes) newGenerations++;
    changed.push([object.uri, generation, object.contentType, object.size, md5, object.updated.toISOString(), object.stat]);
  }
  const listedUris = new Set(objects.map((o) => o.uri));
  const removed = [...known.keys()].filter((uri) => !listedUris.has(uri));
  await ctx.transaction(async (db) => {
    if (removed.length) await db.run(`DELETE FROM ${table} WHERE list_contains($1::VARCHAR[], uri)`, [listValue(removed)]);
    await db.insertRows(
      `INSERT OR REPLACE INTO ${table} (uri, generation, content_type, size, md5_hash, updated, stat)`,
      ['', '', '', '', '', '::TIMESTAMPTZ', ''],
      changed,
    );
    await db.run(objectHashesSql(dataset, objectTable));
    await db.run('INSERT OR REPLACE INTO _objinfer.object_tables VALUES ($1, $2, $3, $4)', [dataset, objectTable, connection, listValue(sourceUris)]);
  });
  return {
    step: 'object table',
    action: known.size === 0 && objects.length > 0 ? 'created' : newGenerations || removed.length ? 'updated' : 'exists',
    detail: `${dataset}.${objectTable}: ${objects.length} objects (${newGenerations} new or changed, ${removed.length} gone)`,
    warnings,
  };
}

/** Objects too large to decode are not read at all: their size alone sends them to the errors table. */
async function hashIfDecodable(object: ObjectMetadata): Promise<string | null> {
  if (object.size > BigInt(MAX_IMAGE_BYTES)) return null;
  return md5Base64(object.path).catch(() => null); // unreadable now: the batch records why, and a later run retries
}

/** The file's mtime in microseconds, unless that would not be newer than the generation it replaces. */
function nextGeneration(object: ObjectMetadata, previous: KnownObject | undefined): bigint {
  if (!previous || object.mtimeUs > previous.generation) return object.mtimeUs;
  return previous.generation + 1n;
}
