/**
 * Every statement the gcp backend sends, analysed as written by Google's ZetaSQL analyser
 * (BigQuery's SQL front end; test/support/gcp/zetasql/Analyse.java), against a catalog of
 * what Google documents: the object table's fixed schema and its `data` pseudo-column,
 * ML.DECODE_IMAGE, ML.RESIZE_IMAGE, ML.PREDICT(MODEL, TABLE) and
 * BQ.REFRESH_EXTERNAL_METADATA_CACHE; tables as the emulator holds them, models as models.get
 * gives them (read from the model by ONNX Runtime), parameters with their declared types.
 * The gateway analyses every gcp test's statements this way; this file shows that the
 * analysis covers each kind of statement, and that it refuses what BigQuery would.
 */
import { openGcpResults } from '../src/backends/gcp';
import { staticToken } from './support/gcp/fixture';
import { gcpSuite } from './support/gcp/suite';
import type { GcpFixture } from './support/gcp/fixture';

const suite = gcpSuite();

/** A fixture's statements after a first run (with a bad object and three batches), a second run and a read of the results. */
async function ranEverything(): Promise<GcpFixture> {
  const f = await suite.fixture({ labels: ['red', 'green', 'blue'], config: { batch: { size: 1, concurrency: 1 }, results: { keepProbabilities: true } } });
  await suite.world.gcs.upload(f.imageBucket, 'notes.txt', Buffer.from('hello'), 'text/plain');
  expect(await f.run()).toMatchObject({ predicted: 3, failed: 1 });
  expect(await f.run()).toMatchObject({ predicted: 0 });
  const reader = openGcpResults(f.spec, { baseUrl: f.gateway.url, authClient: staticToken() });
  await reader.readResults({ label: 'green', minScore: 0.1 });
  await reader.readErrors();
  return f;
}

let ran: GcpFixture;

test('every statement of two runs and a read of the results is analysed by ZetaSQL as written, and accepted', async () => {
  ran = await ranEverything();
  const { statements, analysed, refused } = ran.gateway;
  expect(refused).toEqual([]);
  // Every job the backend inserted was analysed, character for character, before it ran.
  const accepted = new Set(analysed.filter((a) => a.kinds.length > 0).map((a) => a.sql));
  expect(statements.filter((s) => !accepted.has(s))).toEqual([]);
  const kinds = new Set(analysed.flatMap((a) => a.kinds));
  expect([...kinds].sort()).toEqual(expect.arrayContaining(['CallStmt', 'CreateExternalTableStmt', 'CreateModelStmt', 'InsertStmt', 'QueryStmt']));
  // A batch script is analysed statement by statement: refused objects, predictions, the clearing of earlier failures, the counts.
  const batch = analysed.find((a) => a.sql.includes('ML.PREDICT') && a.sql.startsWith('INSERT'))!;
  expect(batch.kinds).toEqual(['InsertStmt', 'InsertStmt', 'DeleteStmt', 'QueryStmt']);
  console.log(
    `ZetaSQL analysed ${analysed.length} statements (${new Set(analysed.map((a) => a.sql)).size} distinct texts), kinds: ${[...kinds].sort().join(', ')}`,
  );
});

/** ZetaSQL's answer to a statement of the run, changed by `edit`, against the catalog the gateway builds for it. */
async function refusalOf(pick: (sql: string) => boolean, edit: (sql: string) => string): Promise<string> {
  const original = ran.gateway.analysed.find((a) => pick(a.sql) && a.kinds.length > 0);
  if (!original) throw new Error('no such statement in the run');
  const edited = edit(original.sql);
  expect(edited).not.toBe(original.sql);
  const answer = await suite.world.analyser.analyse(await ran.gateway.analysisRequest(edited, original.params));
  if (answer.ok) throw new Error(`ZetaSQL accepted:\n${edited}`);
  return answer.error;
}

const canary = (sql: string) => sql.startsWith('SELECT') && sql.includes('ML.PREDICT');
const batch = (sql: string) => sql.startsWith('INSERT') && sql.includes('ML.PREDICT');

test("ZetaSQL refuses a query that does not give ML.PREDICT the model's feature column", async () => {
  const error = await refusalOf(canary, (sql) => sql.replace(/\) AS (\w+)\n/, ') AS not_$1\n'));
  expect(error).toMatch(
    /^Required column "\w+" not found in table passed as argument 2 of ML\.PREDICT\(MODEL, TABLE<\w+ STRUCT<ARRAY<INT64>, ARRAY<FLOAT64>>>\) at \[\d+:\d+\]$/,
  );
});

test("ZetaSQL refuses a column the object table's documented schema does not have, and the data pseudo-column in the output", async () => {
  expect(await refusalOf(canary, (sql) => sql.replace('o.size <=', 'o.bytes <='))).toMatch(/Name bytes not found inside o/);
  // SELECT * of an object table leaves `data` out, as the document says.
  expect(await refusalOf(canary, (sql) => sql.replace(/^SELECT p\.\* EXCEPT \((\w+)\)/, 'SELECT p.data'))).toMatch(/Name data not found inside p/);
});

test('ZetaSQL refuses ML.RESIZE_IMAGE and ML.DECODE_IMAGE called against their documented signatures', async () => {
  expect(await refusalOf(canary, (sql) => sql.replace(', FALSE)', ', 1)'))).toMatch(/No matching signature for function .*ML\.RESIZE_IMAGE/);
  expect(await refusalOf(canary, (sql) => sql.replace('ML.DECODE_IMAGE(o.data)', 'ML.DECODE_IMAGE(o.uri)'))).toMatch(
    /No matching signature for function .*ML\.DECODE_IMAGE/,
  );
});

test('ZetaSQL refuses a parameter used against its declared type, and a column the results table does not have', async () => {
  expect(await refusalOf(batch, (sql) => sql.replace('x.uri BETWEEN @uri_lo AND @uri_hi', 'x.generation BETWEEN @uri_lo AND @uri_hi'))).toMatch(
    /No matching signature for operator BETWEEN/,
  );
  expect(
    await refusalOf(batch, (sql) => sql.replace('(uri, generation, model_version, label, score,', '(uri, generation, model_version, label, confidence,')),
  ).toMatch(/Column confidence is not present in table/);
});

test('ZetaSQL refuses an object table over a connection the project does not have, and a refresh of a table given by the wrong type', async () => {
  expect(
    await refusalOf(
      (s) => s.startsWith('CREATE OR REPLACE EXTERNAL TABLE'),
      (sql) => sql.replace(/WITH CONNECTION `[^`]+`/, 'WITH CONNECTION `objinfer-test.us.nobody`'),
    ),
  ).toMatch(/Connection not found: .*nobody/);
  expect(
    await refusalOf(
      (s) => s.startsWith('CALL BQ.REFRESH_EXTERNAL_METADATA_CACHE'),
      (sql) => sql.replace(/\('([^']+)'\)/, '(42)'),
    ),
  ).toMatch(/No matching signature for procedure BQ\.REFRESH_EXTERNAL_METADATA_CACHE/);
});
