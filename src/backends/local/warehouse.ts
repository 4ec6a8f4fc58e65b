/**
 * The local warehouse: one DuckDB file. DuckDB locks the file per process, and a
 * process that holds it read-write keeps every other process out, even readers. So
 * the file is attached only while statements need it, and detached LINGER_MS after the last
 * (steps that follow each other closely share one attach); work that takes time (decoding,
 * inference) happens with the file detached. Files are attached to one in-memory DuckDB per
 * process, made once: a new DuckDB instance per open cost 11 ms of CPU (its catalog of
 * built-in functions), an ATTACH costs 2. Callers in one process share one attach; another
 * process that finds the file locked waits and tries again.
 */
import { mkdirSync, rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DuckDBInstance, type DuckDBAppender, type DuckDBConnection, type DuckDBValue } from '@duckdb/node-api';
import { ErrorType, ObjinferError } from '../../errors';
import { reportWaitOver, reportWaiting } from '../waiting';

export type Row = Record<string, unknown>;

export interface WarehouseOptions {
  readOnly?: boolean;
  /** How long to wait for another process to release the file. */
  lockTimeoutMs?: number;
}

interface OpenInstance {
  /** The catalog name the file is attached as in the process's DuckDB. */
  alias: string;
  /** Which file this is (device, inode, birth time): a deleted and recreated warehouse is a new one. */
  identity: string;
  users: number;
  readOnly: boolean;
  closed: boolean;
  closing?: NodeJS.Timeout;
}

/** How long a read-write open outlives its last user; another process waits at most this long for the file. */
const LINGER_MS = 100;

const open = new Map<string, Promise<OpenInstance>>();
/** Detaches under way, by path: the same file cannot be attached again until they end. */
const detaching = new Map<string, Promise<void>>();

let host: Promise<DuckDBInstance> | undefined;
let attached = 0;

/** The process's DuckDB that warehouse files are attached to. */
function hostDb(): Promise<DuckDBInstance> {
  host ??= DuckDBInstance.create(':memory:');
  return host;
}

/** Runs one statement on a connection of its own. */
async function runAlone(sql: string): Promise<void> {
  const connection = await (await hostDb()).connect();
  try {
    await connection.run(sql);
  } finally {
    connection.closeSync();
  }
}

/** Quotes an identifier that config validation has already restricted to [A-Za-z0-9_]. */
export function quote(identifier: string): string {
  if (!/^[A-Za-z0-9_]+$/.test(identifier)) throw new Error(`refusing to quote unsafe identifier ${identifier}`);
  return `"${identifier}"`;
}

/** A table of the process's own in-memory DuckDB: scratch space that needs no warehouse file attached. */
export interface ScratchTable {
  /** Its name in the `memory` catalog (the default catalog of an in-memory DuckDB). */
  readonly name: string;
  /** The qualified, quoted name for SQL, from any connection of the process. */
  readonly sql: string;
}

let scratchTables = 0;

/**
 * Runs `work` on a connection of the process's DuckDB that has no warehouse file in use, with
 * scratch tables named for it (`table(label)`): they hold large intermediate sets (a big
 * bucket's listing) outside the JavaScript heap, and queries under `Warehouse.use` reach them
 * by their `sql` name. They are dropped when `work` ends.
 */
export async function withScratch<T>(work: (db: Db, table: (label: string) => ScratchTable) => Promise<T>): Promise<T> {
  const connection = await (await hostDb()).connect();
  const made: ScratchTable[] = [];
  const table = (label: string): ScratchTable => {
    const name = `objinfer_scratch_${++scratchTables}_${label}`;
    const scratch = { name, sql: `memory.main.${quote(name)}` };
    made.push(scratch);
    return scratch;
  };
  try {
    return await work(new Db(connection), table);
  } finally {
    for (const { sql } of made) await connection.run(`DROP TABLE IF EXISTS ${sql}`).catch(() => undefined);
    connection.closeSync();
  }
}

export class Warehouse {
  constructor(
    readonly path: string,
    private readonly options: WarehouseOptions = {},
  ) {}

  /**
   * Runs `work` on a connection; the file stays open only while some caller needs it, and
   * LINGER_MS after unless `release: 'now'` (writes during a run, so that readers in other
   * processes get in between them).
   */
  async use<T>(work: (db: Db, identity: string) => Promise<T>, options: { release?: 'now' | 'linger' } = {}): Promise<T> {
    const entry = await this.acquire();
    let connection: DuckDBConnection | undefined;
    try {
      connection = await (await hostDb()).connect();
      await connection.run(`USE ${entry.alias}`);
      return await work(new Db(connection), entry.identity);
    } finally {
      connection?.closeSync();
      await this.release(entry, options.release === 'now');
    }
  }

  private async acquire(): Promise<OpenInstance> {
    const readOnly = this.options.readOnly ?? false;
    for (;;) {
      let pending = open.get(this.path);
      const mine = !pending;
      if (!pending) {
        pending = this.openWithRetry(readOnly);
        open.set(this.path, pending);
        pending.catch(() => open.delete(this.path));
      }
      let entry: OpenInstance;
      try {
        entry = await pending;
      } catch (error) {
        // Another caller's open failed (a reader's, of a file not made yet): ours is tried on its own.
        if (mine) throw error;
        continue;
      }
      if (entry.closed) continue; // released while we waited for it
      if (entry.users === 0 && entry.identity !== fileIdentity(this.path)) {
        // Lingering on a file since deleted or replaced: the path names a new warehouse now.
        await this.close(entry);
        continue;
      }
      if (!readOnly && entry.readOnly) {
        // A read-only handle is open in this process; wait for it to close, then open read-write.
        await sleep(20);
        continue;
      }
      clearTimeout(entry.closing);
      entry.users++;
      return entry;
    }
  }

  /** Resolves once the file is detached when `now` (another process may open it then). */
  private async release(entry: OpenInstance, now: boolean): Promise<void> {
    entry.users--;
    if (entry.users > 0) return;
    if (now || entry.readOnly) await this.close(entry);
    else entry.closing = setTimeout(() => entry.users === 0 && void this.close(entry), LINGER_MS).unref();
  }

  private close(entry: OpenInstance): Promise<void> {
    if (entry.closed) return detaching.get(this.path) ?? Promise.resolve();
    clearTimeout(entry.closing);
    entry.closed = true;
    open.delete(this.path);
    const detached = runAlone(`DETACH ${entry.alias}`).finally(() => detaching.delete(this.path));
    detaching.set(this.path, detached);
    return detached;
  }

  private async openWithRetry(readOnly: boolean): Promise<OpenInstance> {
    if (!readOnly) mkdirSync(dirname(this.path), { recursive: true });
    await detaching.get(this.path)?.catch(() => undefined);
    const deadline = Date.now() + (this.options.lockTimeoutMs ?? 120_000);
    let delay = 10;
    let reported = 0;
    for (;;) {
      const existed = !readOnly && forgetEmptyFile(this.path);
      try {
        const alias = `warehouse_${++attached}`;
        await runAlone(`ATTACH '${this.path.replaceAll("'", "''")}' AS ${alias}${readOnly ? ' (READ_ONLY)' : ''}`);
        if (reported) reportWaitOver();
        return { alias, identity: fileIdentity(this.path), users: 0, readOnly, closed: false };
      } catch (error) {
        const message = (error as Error).message;
        // A failed first attach (a full disk) can leave an empty file that no later attach would take for a database.
        if (!readOnly && !existed) forgetEmptyFile(this.path);
        if (!/Could not set lock|Conflicting lock/i.test(message)) throw this.cannotOpen(message, error);
        const holder = message.match(/held in (.+?) \(PID (\d+)\)/);
        const why = `the warehouse ${this.path} is locked by another process${holder ? ` (PID ${holder[2]}, ${holder[1]})` : ''}; waiting for it`;
        if (Date.now() - reported > 1000) {
          reportWaiting(why);
          reported = Date.now();
        }
        if (Date.now() > deadline) {
          throw new ObjinferError(
            ErrorType.WarehouseBusy,
            `${why.replace('; waiting for it', '')} for ${Math.round((this.options.lockTimeoutMs ?? 120_000) / 1000)}s; stop that process or point local.warehouse elsewhere`,
          );
        }
        await sleep(delay + Math.random() * delay);
        delay = Math.min(delay * 2, 500);
      }
    }
  }

  /**
   * Why the file cannot be attached. A full disk is said as such by the caller (failures.ts);
   * a file this process may not write (read-only, immutable, wrong owner) or one that is not a
   * DuckDB database (an existing other file, /dev/null) is the config's problem: no retry helps.
   */
  private cannotOpen(message: string, error: unknown): unknown {
    if (/No space left on device/i.test(message)) return error;
    const first = message.split('\n')[0];
    if (/Permission denied|Read-only file system|Operation not permitted|cannot open file/i.test(message)) {
      return new ObjinferError(
        ErrorType.PermissionDenied,
        `cannot open the warehouse ${this.path}${this.options.readOnly ? '' : ' for writing'}: ${first}; ` +
          'give the user the worker runs as write access to it and its folder, or set local.warehouse to a writable path',
      );
    }
    return new ObjinferError(
      ErrorType.InvalidConfig,
      `local.warehouse: ${this.path} cannot be opened as a DuckDB warehouse (${first}); point local.warehouse at a new file or at a warehouse objinfer made`,
    );
  }
}

/**
 * Whether a warehouse file is there, after removing one that is empty: an empty file holds
 * nothing (a new warehouse's first write did not land), and DuckDB refuses to open it.
 */
function forgetEmptyFile(path: string): boolean {
  const info = statSync(path, { throwIfNoEntry: false });
  if (info?.isFile() && info.size === 0) {
    rmSync(path, { force: true });
    return false;
  }
  return info !== undefined;
}

function fileIdentity(path: string): string {
  const info = statSync(path, { bigint: true, throwIfNoEntry: false });
  return info ? `${info.dev}:${info.ino}:${info.birthtimeNs}` : 'missing';
}

/** A thin, typed face over one DuckDB connection. */
export class Db {
  constructor(private readonly connection: DuckDBConnection) {}

  /** Runs `work` in one transaction: all of its writes land, or none do. */
  async transaction<T>(work: () => Promise<T>): Promise<T> {
    await this.run('BEGIN TRANSACTION');
    try {
      const result = await work();
      await this.run('COMMIT');
      return result;
    } catch (error) {
      await this.run('ROLLBACK').catch(() => undefined);
      throw error;
    }
  }

  async run(sql: string, values?: DuckDBValue[]): Promise<void> {
    await this.connection.run(sql, values);
  }

  async all<T extends Row = Row>(sql: string, values?: DuckDBValue[]): Promise<T[]> {
    const reader = await this.connection.runAndReadAll(sql, values);
    return reader.getRowObjectsJS() as T[];
  }

  async one<T extends Row = Row>(sql: string, values?: DuckDBValue[]): Promise<T | undefined> {
    return (await this.all<T>(sql, values))[0];
  }

  /**
   * Inserts rows with multi-row VALUES statements (a statement per row costs about a
   * millisecond each). `casts` gives each column's SQL cast suffix, e.g. '::FLOAT[]' or ''.
   */
  async insertRows(insertInto: string, casts: string[], rows: DuckDBValue[][], rowsPerStatement = 250): Promise<void> {
    for (let start = 0; start < rows.length; start += rowsPerStatement) {
      const chunk = rows.slice(start, start + rowsPerStatement);
      const tuples = chunk.map((_, r) => `(${casts.map((cast, c) => `$${r * casts.length + c + 1}${cast}`).join(', ')})`);
      await this.run(`${insertInto} VALUES ${tuples.join(', ')}`, chunk.flat());
    }
  }

  /** Fills a temporary table of this connection, or a scratch table, with DuckDB's appender (explicitly typed, and fast). */
  async append(table: string | ScratchTable, fill: (appender: DuckDBAppender) => void): Promise<void> {
    const appender =
      typeof table === 'string'
        ? await this.connection.createAppender(table, 'main', 'temp')
        : await this.connection.createAppender(table.name, 'main', 'memory');
    try {
      fill(appender);
      appender.flushSync();
    } finally {
      appender.closeSync();
    }
  }

  async tableExists(schema: string, table: string): Promise<boolean> {
    const row = await this.one('SELECT 1 FROM information_schema.tables WHERE table_catalog = current_database() AND table_schema = $1 AND table_name = $2', [
      schema,
      table,
    ]);
    return row !== undefined;
  }

  async hasPrimaryKey(schema: string, table: string): Promise<boolean> {
    const row = await this.one(
      "SELECT 1 FROM duckdb_constraints() WHERE database_name = current_database() AND schema_name = $1 AND table_name = $2 AND constraint_type = 'PRIMARY KEY'",
      [schema, table],
    );
    return row !== undefined;
  }
}
