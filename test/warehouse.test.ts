/**
 * The warehouse's open file (src/backends/local/warehouse.ts): steps that follow each other
 * closely share one open, and the file is released soon after the last, for other processes.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { Warehouse } from '../src/backends/local/warehouse';
import { listeningForWaits, type StepNews } from '../src/backends/waiting';

/** Whether another process can open the file for writing now. */
function otherProcessCanOpen(path: string): boolean {
  const script = `require('@duckdb/node-api').DuckDBInstance.create(${JSON.stringify(path)}).then((i) => { i.closeSync(); process.exit(0); }, () => process.exit(1));`;
  return spawnSync(process.execPath, ['-e', script], { cwd: join(__dirname, '..') }).status === 0;
}

test('uses in quick succession share one open; then the file is released for other processes', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'objinfer-warehouse-')), 'w.duckdb');
  const statements = jest.spyOn(DuckDBConnection.prototype, 'run');
  try {
    const warehouse = new Warehouse(path);
    await warehouse.use((db) => db.run('CREATE TABLE t (x INTEGER)'));
    await warehouse.use((db) => db.run('INSERT INTO t VALUES (1)'));
    expect(await warehouse.use((db) => db.all('SELECT x FROM t'))).toEqual([{ x: 1 }]);
    const attaches = statements.mock.calls.filter(([sql]) => sql.startsWith('ATTACH'));
    expect(attaches).toHaveLength(1);
  } finally {
    statements.mockRestore();
  }
  let released = otherProcessCanOpen(path);
  for (let i = 0; i < 100 && !released; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    released = otherProcessCanOpen(path);
  }
  expect(released).toBe(true);
});

test("a writer that comes while a reader in the same process fails to open a file not made yet opens it itself (the reader's failure was the writer's)", async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'objinfer-warehouse-')), 'w.duckdb');
  // Both start before either has opened: the writer finds the reader's open under way.
  const reading = new Warehouse(path, { readOnly: true }).use((db) => db.all('SELECT 1 AS x'));
  const writing = new Warehouse(path).use((db) => db.run('CREATE TABLE t (x INTEGER)'));
  await expect(reading).rejects.toThrow(/database does not exist/);
  await expect(writing).resolves.toBeUndefined();
  expect(await new Warehouse(path, { readOnly: true }).use((db) => db.all('SELECT count(*) AS n FROM t'))).toEqual([{ n: 0n }]);
});

test("a batch's work releases the file at once, so a reader in another process gets in between writes", async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'objinfer-warehouse-')), 'w.duckdb');
  await new Warehouse(path).use((db) => db.run('CREATE TABLE t (x INTEGER)'), { release: 'now' });
  expect(otherProcessCanOpen(path)).toBe(true);
});

test("opens attach the file to the process's one DuckDB: no new DuckDB instance per open (11 ms of CPU each)", async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'objinfer-warehouse-')), 'w.duckdb');
  await new Warehouse(path).use((db) => db.run('CREATE TABLE t (x INTEGER)'), { release: 'now' });
  const instances = jest.spyOn(DuckDBInstance, 'create');
  try {
    for (let i = 0; i < 3; i++) {
      await new Warehouse(path).use((db) => db.run(`INSERT INTO t VALUES (${i})`), { release: 'now' });
      expect(otherProcessCanOpen(path)).toBe(true); // detached in between, each time
    }
    expect(await new Warehouse(path, { readOnly: true }).use((db) => db.all('SELECT count(*)::INTEGER AS n FROM t'))).toEqual([{ n: 3 }]);
    expect(instances).not.toHaveBeenCalled();
  } finally {
    instances.mockRestore();
  }
});

test('a lingering open on a file since deleted is not reused: the path names a new warehouse', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'objinfer-warehouse-')), 'w.duckdb');
  const warehouse = new Warehouse(path);
  await warehouse.use((db) => db.run('CREATE TABLE t (x INTEGER)'));
  rmSync(path);
  rmSync(`${path}.wal`, { force: true });
  expect(await warehouse.use((db) => db.tableExists('main', 't'))).toBe(false);
});

test('a wait for a file another process holds is reported, and reported over once the file is had', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'objinfer-warehouse-')), 'w.duckdb');
  await new Warehouse(path).use((db) => db.run('CREATE TABLE t (x INTEGER)'), { release: 'now' });
  const holder = spawn(
    process.execPath,
    [
      '-e',
      `require('@duckdb/node-api').DuckDBInstance.create(${JSON.stringify(path)}).then((i) => { console.log('holding'); process.stdin.once('data', () => { i.closeSync(); process.exit(0); }); });`,
    ],
    { cwd: join(__dirname, '..'), stdio: ['pipe', 'pipe', 'inherit'] },
  );
  await new Promise<void>((ready) => holder.stdout!.once('data', () => ready()));
  const news: StepNews[] = [];
  const used = listeningForWaits(
    (n) => news.push(n),
    () => new Warehouse(path).use((db) => db.all('SELECT count(*)::INTEGER AS n FROM t'), { release: 'now' }),
  );
  while (news.length === 0) await new Promise((resolve) => setTimeout(resolve, 20));
  expect(news).toEqual([{ waiting: expect.stringMatching(new RegExp(`is locked by another process \\(PID ${holder.pid}, .*\\); waiting for it$`)) }]);
  holder.stdin!.write('release\n');
  expect(await used).toEqual([{ n: 0 }]);
  expect(news.at(-1)).toEqual({ waitOver: true });
  expect(news.filter((n) => 'waitOver' in n)).toHaveLength(1);
}, 30_000);
