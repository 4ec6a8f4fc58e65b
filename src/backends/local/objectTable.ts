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
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { listValue } from '@duckdb/node-api';
import type { StepOutcome } from '../../workflows/contract';
import { MAX_IMAGE_BYTES } from '../../images/limits';
import type { LocalContext } from './context';
import { objectHashesSql, objectTableDdl, uriHashSql } from './schema';
import { withScratch, type Db, type ScratchTable } from './warehouse';
import { LISTING_CHUNK, listObjects, matchesAny, pathToUri, statFiles, type ObjectMetadata } from './storage';
import { reportDoing } from '../waiting';

/** Files read and hashed at once: reads overlap in libuv's thread pool (at most 10 MB each: MAX_IMAGE_BYTES). */
const HASHES_AT_ONCE = 8;

/**
 * Lists the bucket into the object table. The listing goes chunk by chunk into a scratch
 * table of the worker's DuckDB, is compared with the object table there, and only the files
 * that are new or changed come back, a chunk at a time, to be hashed: a first listing of
 * 1 000 000 files held every one in the heap (2.4 GiB; docs/benchmarks.md). The object table
 * changes in one transaction at the end.
 */
export async function ensureObjectTable(ctx: LocalContext, chunkSize = LISTING_CHUNK): Promise<StepOutcome> {
  return (await refreshObjectTable(ctx, { chunkSize })).outcome;
}

/**
 * The object table brought up to date, and how many objects got a new generation or left it.
 * With `only` (`objinfer watch`: the files events named), just those files: each that matches
 * a source pattern is stat'ed and, when new or changed, hashed; each that is gone leaves.
 */
export async function refreshObjectTable(
  ctx: LocalContext,
  { chunkSize = LISTING_CHUNK, only }: { chunkSize?: number; only?: Buffer[] } = {},
): Promise<{ changed: number; outcome: StepOutcome }> {
  const { dataset, objectTable, sourceUris, connection } = ctx.spec;
  const table = ctx.table(objectTable);
  await ctx.use(async (db) => {
    await ctx.assertCanRead(db, ctx.imageBuckets);
    for (const ddl of objectTableDdl(dataset, objectTable)) await db.run(ddl);
  });
  return withScratch(async (scratch, scratchTable) => {
    const listing = { listed: scratchTable('listed'), toHash: scratchTable('to_hash'), hashed: scratchTable('hashed'), named: scratchTable('named') };
    const warnings = only ? await recordNamed(scratch, listing, sourceUris, only) : await recordListing(scratch, listing.listed, sourceUris, chunkSize);
    const counts = await ctx.use((db) => findChanged(db, table, listing, sourceUris.length > 1));
    const newGenerations = await hashChanged(scratch, listing, counts, chunkSize);
    if (!only) reportDoing(`writing ${counts.listed.toLocaleString('en-US')} listed objects into ${dataset}.${objectTable}`);
    const removed = await ctx.transaction(async (db) => {
      const gone = await deleteUnlisted(db, table, listing.listed, only ? listing.named : undefined);
      if (counts.changed > 0) await upsertHashed(db, table, listing);
      await db.run(objectHashesSql(dataset, objectTable));
      await db.run('INSERT OR REPLACE INTO _objinfer.object_tables VALUES ($1, $2, $3, $4)', [dataset, objectTable, connection, listValue(sourceUris)]);
      return gone;
    });
    const scopeText = only ? `${counts.listed} of ${only.length} named objects listed` : `${counts.listed} objects`;
    const outcome: StepOutcome = {
      step: 'object table',
      action: counts.known === 0 && counts.listed > 0 ? 'created' : newGenerations || removed ? 'updated' : 'exists',
      detail: `${dataset}.${objectTable}: ${scopeText} (${newGenerations} new or changed, ${removed} gone)`,
      warnings,
    };
    return { changed: newGenerations + removed, outcome };
  });
}

interface ListingTables {
  /** Every file listed, numbered in listing order (`i`); a file two patterns match is there twice. */
  listed: ScratchTable;
  /** The listed files whose stat or size differ from the object table's, or that it lacks, once each, with what it knows. */
  toHash: ScratchTable;
  /** Their new generation and MD5, by `i`. */
  hashed: ScratchTable;
  /** The URIs of the files named (`only`: a watch's micro-batch), listed or gone. */
  named: ScratchTable;
}

type Lister = (take: (objects: ObjectMetadata[]) => Promise<void>) => Promise<string[]>;

/** Writes the listing into `listed`, a chunk at a time; returns the warnings about links. */
async function recordListing(
  scratch: Db,
  listed: ScratchTable,
  sourceUris: string[],
  chunkSize: number,
  list: Lister = (take) => listObjects(sourceUris, take, chunkSize),
): Promise<string[]> {
  await scratch.run(
    `CREATE TABLE ${listed.sql} (i BIGINT, uri VARCHAR, path BLOB, mtime_us BIGINT, stat VARCHAR, content_type VARCHAR, size BIGINT, updated VARCHAR)`,
  );
  let next = 0n;
  return list(async (objects) => {
    await scratch.append(listed, (row) => {
      for (const object of objects) {
        row.appendBigInt(next++);
        row.appendVarchar(object.uri);
        row.appendBlob(object.path);
        row.appendBigInt(object.mtimeUs);
        row.appendVarchar(object.stat);
        row.appendVarchar(object.contentType);
        row.appendBigInt(object.size);
        row.appendVarchar(object.updated.toISOString());
        row.endRow();
      }
    });
    reportDoing(`listing: ${next.toLocaleString('en-US')} files matched so far`);
  });
}

/** Writes the named files that match a pattern and still exist into `listed`, and every named URI into `named`. */
async function recordNamed(scratch: Db, { listed, named }: ListingTables, sourceUris: string[], paths: Buffer[]): Promise<string[]> {
  await scratch.run(`CREATE TABLE ${named.sql} (uri VARCHAR)`);
  const matching = paths.filter(matchesAny(sourceUris));
  await scratch.append(named, (row) => {
    for (const path of matching) {
      row.appendVarchar(pathToUri(path));
      row.endRow();
    }
  });
  return recordListing(scratch, listed, sourceUris, LISTING_CHUNK, async (take) => {
    const objects = statFiles(matching);
    if (objects.length > 0) await take(objects);
    return [];
  });
}

/**
 * Fills `toHash`: a file whose stat (mtime, ctime, inode) and size are what the object table
 * has is unchanged; the others are read. `twice`: several patterns, which may match a file
 * twice (it is kept once). Returns the counts.
 */
async function findChanged(db: Db, table: string, { listed, toHash }: ListingTables, twice: boolean): Promise<ListingCounts> {
  // With one pattern each file is listed once; with more, one may match two.
  const once = twice ? `l.i IN (SELECT min(i) FROM ${listed.sql} GROUP BY uri) AND` : '';
  await db.run(
    `CREATE TABLE ${toHash.sql} AS
     SELECT l.i, l.path, l.size, l.mtime_us, k.generation AS known_generation, k.md5_hash AS known_md5, k.size AS known_size
     FROM ${listed.sql} l LEFT JOIN ${table} k ON k.uri = l.uri
     WHERE ${once} (k.uri IS NULL OR k.stat IS DISTINCT FROM l.stat OR k.size <> l.size)
     ORDER BY l.i`,
  );
  const counts = await db.one<{ known: bigint; listed: bigint; changed: bigint }>(
    `SELECT (SELECT count(*) FROM ${table}) AS known, (SELECT count(${twice ? 'DISTINCT uri' : '*'}) FROM ${listed.sql}) AS listed, (SELECT count(*) FROM ${toHash.sql}) AS changed`,
  );
  return { known: Number(counts?.known ?? 0), listed: Number(counts?.listed ?? 0), changed: Number(counts?.changed ?? 0) };
}

interface ListingCounts {
  /** Objects in the table before this listing. */
  known: number;
  /** Objects listed now, each once. */
  listed: number;
  /** Of those, the files to read: new, or with another stat or size. */
  changed: number;
}

interface FileToHash {
  i: bigint;
  path: Buffer;
  size: bigint;
  mtime_us: bigint;
  known_generation: bigint | null;
  known_md5: string | null;
  known_size: bigint | null;
  [key: string]: unknown;
}

/**
 * Reads and hashes the files of `toHash`, a chunk at a time, into `hashed`: the same bytes
 * keep their generation (a chmod, a copy of the same file), new bytes get a new one, even
 * when the mtime was kept. Returns how many got a new generation.
 */
async function hashChanged(scratch: Db, { toHash, hashed }: ListingTables, counts: ListingCounts, chunkSize: number): Promise<number> {
  if (counts.changed === 0) return 0; // a re-run over an unchanged bucket: nothing to read
  await scratch.run(`CREATE TABLE ${hashed.sql} (i BIGINT, generation BIGINT, md5_hash VARCHAR)`);
  const chunkAfter = (i: bigint) =>
    scratch.all<FileToHash>(
      `SELECT i, path, size, mtime_us, known_generation, known_md5, known_size FROM ${toHash.sql} WHERE i > $1 ORDER BY i LIMIT ${chunkSize}`,
      [i],
    );
  let newGenerations = 0;
  let read = 0;
  const total = counts.changed.toLocaleString('en-US');
  let files = await chunkAfter(-1n);
  while (files.length > 0) {
    reportDoing(`reading new or changed files: ${read.toLocaleString('en-US')} of ${total} done (${counts.listed.toLocaleString('en-US')} objects listed)`);
    read += files.length;
    // The next chunk is read (and turned into objects) while this one's files are.
    const coming = files.length === chunkSize ? chunkAfter(files.at(-1)!.i) : Promise.resolve([]);
    coming.catch(() => undefined); // awaited below
    const outcomes = await inParallel(files, HASHES_AT_ONCE, hashOne);
    files = await coming;
    newGenerations += outcomes.filter((o) => o.newGeneration).length;
    await scratch.append(hashed, (row) => {
      for (const { i, generation, md5 } of outcomes) {
        row.appendBigInt(i);
        row.appendBigInt(generation);
        if (md5 === null) row.appendNull();
        else row.appendVarchar(md5);
        row.endRow();
      }
    });
  }
  return newGenerations;
}

/** A file's MD5 and generation: the same bytes keep theirs; new bytes, or none readable, get a new one. */
async function hashOne(file: FileToHash): Promise<{ i: bigint; generation: bigint; md5: string | null; newGeneration: boolean }> {
  const md5 = await hashIfDecodable(file.path, file.size);
  const sameBytes = file.known_generation !== null && md5 !== null && file.known_md5 === md5 && file.known_size === file.size;
  const generation = sameBytes ? file.known_generation! : nextGeneration(file.mtime_us, file.known_generation);
  return { i: file.i, generation, md5, newGeneration: !sameBytes };
}

/** Objects no longer listed (of the `named` ones, when given) out of the object table (one anti-join); returns how many. */
async function deleteUnlisted(db: Db, table: string, listed: ScratchTable, named?: ScratchTable): Promise<number> {
  const among = named ? `k.uri IN (SELECT uri FROM ${named.sql}) AND ` : '';
  const unlisted = `${among}NOT EXISTS (SELECT 1 FROM ${listed.sql} l WHERE l.uri = k.uri)`;
  const gone = Number((await db.one<{ n: bigint }>(`SELECT count(*) AS n FROM ${table} k WHERE ${unlisted}`))?.n ?? 0);
  if (gone > 0) await db.run(`DELETE FROM ${table} k WHERE ${unlisted}`);
  return gone;
}

/** New and changed objects into the object table, with their URI hashes, in one statement. */
async function upsertHashed(db: Db, table: string, { listed, hashed }: ListingTables): Promise<void> {
  const hash = uriHashSql('l.uri');
  await db.run(
    `INSERT OR REPLACE INTO ${table} (uri, generation, content_type, size, md5_hash, updated, stat, uri_hash_high, uri_hash_low)
     SELECT l.uri, h.generation, l.content_type, l.size, h.md5_hash, CAST(l.updated AS TIMESTAMPTZ), l.stat, ${hash.high}, ${hash.low}
     FROM ${hashed.sql} h JOIN ${listed.sql} l USING (i)`,
  );
}

/**
 * Objects too large to decode are not read at all: their size alone sends them to the errors
 * table. The others are read whole, in one call, and not remembered: the stat comparison
 * already keeps unchanged files from being read again (a stream and the digest cache of
 * digest.ts cost 0.3 ms per small file, and filled the cache with every image's name).
 */
async function hashIfDecodable(path: Buffer, size: bigint): Promise<string | null> {
  if (size > BigInt(MAX_IMAGE_BYTES)) return null;
  // Unreadable now, or grown since it was listed: the batch records why, and a later run retries.
  const bytes = await readListed(path, Number(size)).catch(() => null);
  return bytes && createHash('md5').update(bytes).digest('base64');
}

/** The file's bytes if it still has the size it was listed with (so a file that grew is not read whole). */
async function readListed(path: Buffer, size: number): Promise<Buffer | null> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.allocUnsafe(size + 1);
    const { bytesRead } = await handle.read(buffer, 0, size + 1, 0);
    return bytesRead === size ? buffer.subarray(0, size) : null;
  } finally {
    await handle.close();
  }
}

/** `work` over `items`, `limit` at a time; the results in the items' order. */
async function inParallel<T, R>(items: T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}

/** The file's mtime in microseconds, unless that would not be newer than the generation it replaces. */
function nextGeneration(mtimeUs: bigint, knownGeneration: bigint | null): bigint {
  if (knownGeneration === null || mtimeUs > knownGeneration) return mtimeUs;
  return knownGeneration + 1n;
}
