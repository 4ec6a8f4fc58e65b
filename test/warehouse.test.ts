/**
 * The warehouse's open file (src/backends/local/warehouse.ts): steps that follow each other
 * closely share one open, and the file is released soon after the last, for other processes.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { Warehouse } from '../src/backends/local/warehouse';

/** Whether another process can open the file for writing now. */
function otherProcessCanOpen(path: string): boolean {
  const script = `require('@duckdb/node-api').DuckDBInstance.create(${JSON.stringify(path)}).then((i) => { i.closeSync(); process.exit(0); }, () => process.exit(1));`;
  return spawnSync(process.execPath, ['-e', script], { cwd: join(__dirname, '..') }).status === 0;
}

test('uses in quick succession share one open; then the file is released for other processes', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'objinfer-warehouse-')), 'w.duckdb');
  const opens = jest.spyOn(DuckDBInstance, 'create');
  try {
    const warehouse = new Warehouse(path);
    await warehouse.use((db) => db.run('CREATE TABLE t (x INTEGER)'));
    await warehouse.use((db) => db.run('INSERT INTO t VALUES (1)'));
    expect(await warehouse.use((db) => db.all('SELECT x FROM t'))).toEqual([{ x: 1 }]);
    expect(opens).toHaveBeenCalledTimes(1);
  } finally {
    opens.mockRestore();
  }
  let released = otherProcessCanOpen(path);
  for (let i = 0; i < 100 && !released; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    released = otherProcessCanOpen(path);
  }
  expect(released).toBe(true);
});

test("a batch's work releases the file at once, so a reader in another process gets in between writes", async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'objinfer-warehouse-')), 'w.duckdb');
  await new Warehouse(path).use((db) => db.run('CREATE TABLE t (x INTEGER)'), { release: 'now' });
  expect(otherProcessCanOpen(path)).toBe(true);
});

test('a lingering open on a file since deleted is not reused: the path names a new warehouse', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'objinfer-warehouse-')), 'w.duckdb');
  const warehouse = new Warehouse(path);
  await warehouse.use((db) => db.run('CREATE TABLE t (x INTEGER)'));
  rmSync(path);
  rmSync(`${path}.wal`, { force: true });
  expect(await warehouse.use((db) => db.tableExists('main', 't'))).toBe(false);
});
