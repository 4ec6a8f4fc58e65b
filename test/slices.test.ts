/**
 * Which batch an object is in, locally: `md5_number(uri) % k` (predict.ts). The fast form
 * takes the remainder from the hash's two 64-bit halves; DuckDB's own 128-bit remainder is
 * the oracle, over URIs of every kind and batch counts up to the limit the form allows.
 */
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { sliceIndexSql, splitBitSql } from '../src/backends/local/predict';
import { uriHashSql } from '../src/backends/local/schema';
import { MAX_BATCHES } from '../src/workflows/limits';

let instance: DuckDBInstance;
let db: DuckDBConnection;

beforeAll(async () => {
  instance = await DuckDBInstance.create(':memory:');
  db = await instance.connect();
  // Plain, long, non-ASCII, spaces and percent signs, and the empty string.
  await db.run(`CREATE TABLE uris AS
    SELECT 'file:///bucket/photos/img' || range || '.jpg' AS uri FROM range(20000)
    UNION ALL SELECT 'gs://b/' || repeat('x', range) || '/ünïcødé ' || range || '%20.png' FROM range(1, 300)
    UNION ALL SELECT ''`);
});

afterAll(() => {
  db.closeSync();
  instance.closeSync();
});

async function mismatches(sql: string): Promise<bigint> {
  const rows = (await db.runAndReadAll(`SELECT count(*) FROM uris WHERE ${sql}`)).getRows();
  return rows[0]![0] as bigint;
}

test.each([1, 2, 3, 7, 64, 1000, MAX_BATCHES - 1, MAX_BATCHES, 65_537, 2 ** 31 - 1, 2 ** 32 - 5, 2 ** 32])(
  'the batch of every URI is md5_number(uri) %% %d',
  async (count) => {
    expect(await mismatches(`${sliceIndexSql(uriHashSql('uri').high, uriHashSql('uri').low, count)} <> md5_number(uri) % CAST(${count} AS UHUGEINT)`)).toBe(0n);
  },
);

test('the split bit is md5_number % 2 of the salted URI', async () => {
  const salted = `'objinfer-split-3:' || uri`;
  expect(await mismatches(`${splitBitSql(salted)} <> md5_number(${salted}) % 2`)).toBe(0n);
});

test('batch counts the fast form cannot take exactly are refused', () => {
  for (const count of [0, -1, 1.5, 2 ** 32 + 1, Number.NaN]) expect(() => sliceIndexSql('h', 'l', count)).toThrow(RangeError);
});
