/**
 * Looking at the results: `objinfer export` read back by readers that objinfer did not write
 * (pyarrow and DuckDB for Parquet, Python's csv and json), and `objinfer report` opened in
 * real Chromium, with object names that try to become markup.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Client, Connection } from '@temporalio/client';
import { chromium, type Browser } from 'playwright-core';
import { startPipeline, waitForResult } from '../src/client';
import { evaluate } from '../src/evaluation';
import { buildReport, reportHtml } from '../src/report';
import { PROJECT_ROOT, CLI } from './support/paths';
import { fiftyOneImport } from './support/references';
import { loadConfig } from '../src/config';
import { makeFixture, query, testClient, uniqueQueue, withWorker, type Fixture } from './support/pipeline';

const PYTHON = join(PROJECT_ROOT, '.objinfer', 'tools', 'venv', 'bin', 'python');
const ARTEFACTS = join(PROJECT_ROOT, 'test-output', 'report');
const HOSTILE_NAMES = ['a"b\'c&d.png', 'x<script>window.pwned=1<\\script>.png', '<img src=x onerror=window.pwned=2>.png'];

let client: Client;
let connection: Connection;
let fixture: Fixture;
let browser: Browser;

function cli(args: string[]) {
  const result = spawnSync(CLI, [...args, '--config', fixture.configFile], { cwd: fixture.dir, encoding: 'utf8', timeout: 120_000 });
  if (result.status !== 0) throw new Error(`objinfer ${args.join(' ')} exited ${result.status}: ${result.stderr}`);
  return result.stdout;
}

function python(script: string, ...args: string[]): unknown {
  const result = spawnSync(PYTHON, ['-c', script, ...args], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(result.stderr);
  return JSON.parse(result.stdout);
}

type Table = { uri: string; generation: bigint; label: string; score: number; top_k: { label: string; index: number; score: number }[] }[];

async function resultsTable(): Promise<Table> {
  const rows = await query<Table[number]>(
    fixture.config,
    `SELECT uri, generation, label, score, top_k FROM ${fixture.config.dataset}.${fixture.config.results.table} ORDER BY uri`,
  );
  return rows.map((r) => ({ ...r, top_k: r.top_k.map((t) => ({ label: t.label, index: t.index, score: t.score })) }));
}

beforeAll(async () => {
  ({ client, connection } = await testClient());
  fixture = await makeFixture({ labels: ['red', 'green', 'blue', 'red', 'yellow'], corrupt: true, taskQueue: uniqueQueue('look') });
  const png = readFileSync(join(fixture.imagesDir, 'red-000.png'));
  for (const name of HOSTILE_NAMES) writeFileSync(join(fixture.imagesDir, name), png);
  // A name that is not UTF-8 (byte 0xff), as some file systems hold them.
  writeFileSync(Buffer.from([...Buffer.from(join(fixture.imagesDir, 'latin')), 0xff, ...Buffer.from('.png')]), png);
  await withWorker(fixture.config.temporal.taskQueue, async () => waitForResult(client, (await startPipeline(client, fixture.config)).workflowId));
  mkdirSync(ARTEFACTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
}, 240_000);
afterAll(async () => {
  await browser?.close();
  await connection.close();
});

test('Parquet keeps every row and top_k as a list of structs (read by pyarrow and by DuckDB)', async () => {
  const out = join(fixture.dir, 'r.parquet');
  expect(JSON.parse(cli(['export', '--format', 'parquet', '--out', out, '-o', 'json']))).toMatchObject({ rows: 9, table: 'results' });
  const table = await resultsTable();
  const read = python(
    `import pyarrow.parquet as pq, json, sys
t = pq.read_table(sys.argv[1])
print(json.dumps({"schema": {f.name: str(f.type) for f in t.schema}, "rows": sorted(t.select(["uri","generation","label","score","top_k"]).to_pylist(), key=lambda r: r["uri"])}))`,
    out,
  ) as { schema: Record<string, string>; rows: Table };
  expect(read.schema.top_k).toBe('list<element: struct<label: string, index: int32, score: double>>');
  expect(read.schema.generation).toBe('int64');
  expect(read.rows.map((r) => ({ ...r, generation: BigInt(r.generation as unknown as number) }))).toEqual(table);
  const viaDuckDb = await query<{ n: bigint }>(
    fixture.config,
    `SELECT count(*) AS n FROM read_parquet('${out}') p JOIN ${fixture.config.dataset}.${fixture.config.results.table} r ON p.uri = r.uri AND p.top_k = r.top_k AND p.score = r.score`,
  );
  expect(Number(viaDuckDb[0]!.n)).toBe(table.length);
});

test('CSV and JSON lines hold the same rows (read by Python), with the filters of `results`', async () => {
  const table = await resultsTable();
  const csvOut = join(fixture.dir, 'r.csv');
  cli(['export', '--format', 'csv', '--out', csvOut]);
  const csvRows = python(`import csv, json, sys; print(json.dumps(list(csv.DictReader(open(sys.argv[1], newline="", encoding="utf-8")))))`, csvOut) as Record<
    string,
    string
  >[];
  expect(csvRows.map((r) => r.uri).sort()).toEqual(table.map((r) => r.uri).sort());
  expect(Object.keys(csvRows[0]!)).toEqual(['uri', 'generation', 'label', 'score', 'top_k', 'model_version', 'run_id', 'predicted_at']); // as `results -o csv`
  for (const row of csvRows) expect(Number(row.score)).toBe(table.find((t) => t.uri === row.uri)!.score);

  const jsonlOut = join(fixture.dir, 'red.jsonl');
  cli(['export', '--format', 'jsonl', '--out', jsonlOut, '--label', 'red']);
  const lines = python(`import json, sys; print(json.dumps([json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]))`, jsonlOut) as Table;
  expect(lines.length).toBe(table.filter((r) => r.label === 'red').length);
  expect(lines.every((l) => l.label === 'red' && Array.isArray(l.top_k) && l.top_k[0]!.label === 'red')).toBe(true);

  const errorsOut = join(fixture.dir, 'e.jsonl');
  cli(['export', '--format', 'jsonl', '--errors', '--out', errorsOut]);
  const errors = readFileSync(errorsOut, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { uri: string; error: string });
  expect(errors.map((e) => e.uri)).toEqual([expect.stringMatching(/broken\.jpg$/)]);
});

test('Label Studio tasks: one per image, its prediction a scored choice', async () => {
  const out = join(fixture.dir, 'tasks.json');
  cli(['export', '--format', 'label-studio', '--out', out, '--max-score', '1']);
  const tasks = JSON.parse(readFileSync(out, 'utf8')) as {
    data: { image: string };
    predictions: {
      model_version: string;
      score: number;
      result: { from_name: string; to_name: string; type: string; value: { choices: string[] }; score: number }[];
    }[];
  }[];
  const table = await resultsTable();
  expect(tasks).toHaveLength(table.length);
  for (const task of tasks) {
    const row = table.find((r) => r.uri === task.data.image)!;
    expect(task.predictions[0]!.result).toEqual([
      { from_name: 'choice', to_name: 'image', type: 'choices', value: { choices: [row.label] }, score: row.score },
    ]);
  }
});

test('the report opens offline in Chromium: a card per prediction, filters and sort work, names stay text', async () => {
  const out = join(fixture.dir, 'report.html');
  expect(JSON.parse(cli(['report', '--out', out, '-o', 'json']))).toMatchObject({ predicted: 9, failed: 1 });
  const page = await browser.newPage();
  const problems: string[] = [];
  page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('request', (r) => !r.url().startsWith('file://') && !r.url().startsWith('data:') && problems.push(`network: ${r.url()}`));
  await page.goto(`file://${out}`);
  await page.screenshot({ path: join(ARTEFACTS, 'report.png'), fullPage: true });
  expect(problems).toEqual([]);
  expect(await page.locator('#gallery .card').count()).toBe(9);
  expect(await page.locator('#gallery .card img').count()).toBe(9); // every image has a thumbnail
  expect(await page.evaluate('typeof window.pwned')).toBe('undefined');
  for (const name of HOSTILE_NAMES) await expect(page.getByText(name, { exact: false }).count()).resolves.toBeGreaterThan(0);

  const scores = async () => (await page.locator('#gallery .card').evaluateAll((cards) => cards.map((c) => c.getAttribute('data-score')))).map(Number);
  const first = await scores();
  expect(first).toEqual([...first].sort((a, b) => a - b)); // least confident first
  await page.selectOption('#sort', 'most-confident');
  const second = await scores();
  expect(second).toEqual([...first].sort((a, b) => b - a));

  await page.selectOption('#label', 'red');
  const reds = (await resultsTable()).filter((r) => r.label === 'red').length;
  expect(await page.locator('#gallery .card').count()).toBe(reds);
  expect(await page.locator('#gallery .card').evaluateAll((cards) => cards.map((c) => c.getAttribute('data-label')))).toEqual(new Array(reds).fill('red'));
  await page.selectOption('#label', '');
  await page.fill('#min', '2'); // above every score
  expect(await page.locator('#gallery .card').count()).toBe(0);
  expect(await page.locator('#errors tr').count()).toBe(1);
  await page.close();
}, 120_000);

test("the report's captions are file names (the path on hover), and an empty errors section says none", async () => {
  const out = join(fixture.dir, 'report-captions.html');
  cli(['report', '--out', out]);
  const page = await browser.newPage();
  await page.goto(`file://${out}`);
  const captions = await page.locator('#gallery .card .name').evaluateAll((names) => names.map((n) => [n.textContent, n.getAttribute('title')]));
  expect(captions.length).toBe(9);
  for (const [name, path] of captions) {
    expect(name).not.toContain('/');
    expect(path).toBe(`${fixture.imagesDir}/${name}`);
  }
  await page.close();
  // The same report with no errors: the section says so, instead of an empty table.
  const data = await buildReport(fixture.config, {});
  const clean = join(fixture.dir, 'report-clean.html');
  writeFileSync(clean, reportHtml({ ...data, errors: [] }));
  const cleanPage = await browser.newPage();
  await cleanPage.goto(`file://${clean}`);
  expect(await cleanPage.locator('#errors tr').allTextContents()).toEqual(['none: every image was classified']);
  await cleanPage.close();
});

test("the guide's Python line reads the warehouse with Python's duckdb as pip gives it today (2.0.0)", () => {
  const guide = readFileSync(join(PROJECT_ROOT, 'docs', 'guide.md'), 'utf8');
  const line = /^python3 -c "(import duckdb; .*)"$/m.exec(guide)?.[1];
  expect(line).toBeDefined();
  const script = line!.replace('.objinfer/demo/warehouse.duckdb', fixture.config.local.warehouse).replaceAll('objinfer_demo', fixture.config.dataset);
  const result = spawnSync(PYTHON, ['-c', `import duckdb; assert duckdb.__version__ == '2.0.0', duckdb.__version__\n${script}`], { encoding: 'utf8' });
  expect(result.stderr).toBe('');
  expect(result.stdout).toMatch(/uri\s+│\s+label\s+│\s+score/);
  expect(result.stdout.match(/file:\/\//g)?.length).toBe(9);
});

test("with ground truth the report shows the evaluation, a cell of its heat map filters the gallery to that cell's images, and Label Studio tasks carry it as their annotation", async () => {
  const f = await makeFixture({
    labels: ['red', 'green', 'blue', 'red', 'yellow'],
    taskQueue: uniqueQueue('evaluate'),
    config: { evaluation: { groundTruth: { fromPath: 'images/{label}-*' } } },
  });
  // Named blue, coloured red: the model says red.
  const red = readdirSync(f.imagesDir).find((name) => name.startsWith('red-000'))!;
  copyFileSync(join(f.imagesDir, red), join(f.imagesDir, `blue-900${extname(red)}`));
  await withWorker(f.config.temporal.taskQueue, async () => waitForResult(client, (await startPipeline(client, f.config)).workflowId));
  const out = join(f.dir, 'report.html');
  const made = spawnSync(CLI, ['report', '--out', out, '--config', f.configFile], { cwd: f.dir, encoding: 'utf8', timeout: 120_000 });
  expect(made.status).toBe(0);
  const expected = await evaluate(f.config);
  expect(expected.accuracy).toBeCloseTo(5 / 6, 12);

  const page = await browser.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(e.message));
  await page.goto(`file://${out}`);
  await page.screenshot({ path: join(ARTEFACTS, 'report-evaluation.png'), fullPage: true });
  expect(problems).toEqual([]);
  await expect(page.locator('#accuracy').textContent()).resolves.toBe(`accuracy ${(expected.accuracy! * 100).toFixed(1)}%`);
  expect(await page.locator('#confusion .cell').count()).toBe(expected.confusion.labels.length ** 2);
  expect(await page.locator('#classes tbody tr').count()).toBe(expected.classes.length);
  await page.locator('#confusion .cell[data-truth="blue"][data-predicted="red"]').click();
  expect(await page.locator('#gallery .card .name').allTextContents()).toEqual([`blue-900${extname(red)}`]);
  await page.locator('#clear-cell').click();
  expect(await page.locator('#gallery .card').count()).toBe(6);
  await page.close();

  // Label Studio tasks carry the truth as the annotation, beside the model's prediction.
  const tasksFile = join(f.dir, 'tasks.json');
  expect(spawnSync(CLI, ['export', '--format', 'label-studio', '--out', tasksFile, '--config', f.configFile], { encoding: 'utf8' }).status).toBe(0);
  type Task = {
    data: { image: string };
    annotations?: { result: { value: { choices: string[] } }[] }[];
    predictions: { result: { value: { choices: string[] } }[] }[];
  };
  const tasks = JSON.parse(readFileSync(tasksFile, 'utf8')) as Task[];
  const misnamed = tasks.find((t) => t.data.image.endsWith(`/blue-900${extname(red)}`))!;
  expect(misnamed.annotations?.[0]?.result[0]?.value.choices).toEqual(['blue']);
  expect(misnamed.predictions[0]?.result[0]?.value.choices).toEqual(['red']);
  expect(tasks.every((t) => t.annotations?.length === 1)).toBe(true);
}, 120_000);

test('with ground truth from a file, exports carry it (CSV, Parquet, FiftyOne as its importer reads it), the heat map filters the gallery, and the report shows what changed between two versions', async () => {
  const f = await makeFixture({
    labels: ['red', 'green', 'blue', 'red', 'yellow', 'green'],
    taskQueue: uniqueQueue('truth-file'),
  });
  const uris = readdirSync(f.imagesDir)
    .sort()
    .map((name) => pathToFileURL(join(f.imagesDir, name)).href);
  // The file's truth is the colour in the name, but red-000 is said to be blue, and yellow has none.
  const truth = new Map(uris.filter((u) => !u.includes('yellow')).map((u) => [u, u.includes('/red-000') ? 'blue' : basename(u).split('-')[0]!]));
  writeFileSync(join(f.dir, 'truth.csv'), `uri,label\n${[...truth].map(([u, l]) => `"${u}",${l}`).join('\n')}\n`);
  writeFileSync(f.configFile, `${readFileSync(f.configFile, 'utf8')}evaluation:\n  groundTruth:\n    file: truth.csv\n`);
  f.config = loadConfig(f.configFile);
  const run = async (config: typeof f.config) =>
    withWorker(config.temporal.taskQueue, async () => waitForResult(client, (await startPipeline(client, config)).workflowId));
  await run(f.config);

  // CSV (Python's csv) and Parquet (pyarrow): the ground truth column beside each prediction.
  const csvFile = join(f.dir, 'results.csv');
  const parquetFile = join(f.dir, 'results.parquet');
  expect(spawnSync(CLI, ['export', '--format', 'csv', '--out', csvFile, '--config', f.configFile], { encoding: 'utf8' }).status).toBe(0);
  expect(spawnSync(CLI, ['export', '--format', 'parquet', '--out', parquetFile, '--config', f.configFile], { encoding: 'utf8' }).status).toBe(0);
  const fromCsv = python(
    'import csv, json, sys; print(json.dumps({r["uri"]: r["ground_truth"] for r in csv.DictReader(open(sys.argv[1], newline=""))}))',
    csvFile,
  ) as Record<string, string>;
  const fromParquet = python(
    'import pyarrow.parquet as pq, json, sys; t = pq.read_table(sys.argv[1]).to_pylist(); print(json.dumps({r["uri"]: r["ground_truth"] for r in t}))',
    parquetFile,
  ) as Record<string, string | null>;
  const expectedTruth = Object.fromEntries(uris.map((u) => [u, truth.get(u) ?? null]));
  expect(fromParquet).toEqual(expectedTruth);
  expect(fromCsv).toEqual(Object.fromEntries(Object.entries(expectedTruth).map(([u, l]) => [u, l ?? ''])));

  // FiftyOne's importer reads the folder: each image's prediction with its confidence, and the truth.
  const folder = join(f.dir, 'fiftyone');
  const exported = spawnSync(CLI, ['export', '--format', 'fiftyone', '--out', folder, '--config', f.configFile], { encoding: 'utf8' });
  expect(exported.status).toBe(0);
  expect(exported.stdout).toMatch(
    /^6 images of version \S+ written to .*, 5 with their ground truth\); in Python:\n {2}import fiftyone as fo\n {2}dataset = fo\.Dataset\.from_dir\(/,
  );
  const samples = fiftyOneImport(folder);
  const rows = await query<{ uri: string; label: string; score: number; model_version: string }>(
    f.config,
    `SELECT uri, label, score, model_version FROM ${f.config.dataset}.${f.config.results.table} ORDER BY uri`,
  );
  expect(samples.predictions).toEqual(
    Object.fromEntries(rows.map((r) => [fileURLToPath(r.uri), { label: r.label, confidence: r.score, model_version: r.model_version }])),
  );
  expect(samples.ground_truth).toEqual(Object.fromEntries([...truth].map(([u, l]) => [fileURLToPath(u), { label: l, confidence: null, model_version: null }])));
  // A second export replaces the first; a folder that is not an export is refused, and left as it was.
  expect(spawnSync(CLI, ['export', '--format', 'fiftyone', '--out', folder, '--config', f.configFile], { encoding: 'utf8' }).status).toBe(0);
  const refused = spawnSync(CLI, ['export', '--format', 'fiftyone', '--out', f.imagesDir, '--config', f.configFile], { encoding: 'utf8' });
  expect(refused.status).toBe(2);
  expect(refused.stderr).toMatch(/exists and is not an earlier objinfer export/);

  // A second version: the same model with red and green swapped, so those images flip.
  const labelsFile = f.config.model.labels!;
  const swapped = readFileSync(labelsFile, 'utf8')
    .replace(/^red$/m, '\u0000')
    .replace(/^green$/m, 'red')
    .replace('\u0000', 'green');
  writeFileSync(labelsFile, swapped);
  await run(loadConfig(f.configFile));
  const secondVersion = await query<{ v: string }>(
    f.config,
    `SELECT DISTINCT model_version AS v FROM ${f.config.dataset}.${f.config.results.table} WHERE model_version <> '${rows[0]!.model_version}'`,
  );
  expect(secondVersion).toHaveLength(1);
  const out = join(f.dir, 'report.html');
  expect(spawnSync(CLI, ['report', '--out', out, '--config', f.configFile], { cwd: f.dir, encoding: 'utf8', timeout: 120_000 }).status).toBe(0);
  const page = await browser.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(e.message));
  await page.goto(`file://${out}`);
  await page.screenshot({ path: join(ARTEFACTS, 'report-changes.png'), fullPage: true });
  expect(problems).toEqual([]);
  // The evaluation is of the newest version: red-000 (said blue) is now predicted green.
  await page.locator('#confusion .cell[data-truth="blue"][data-predicted="green"]').click();
  expect(await page.locator('#gallery .card .name').allTextContents()).toEqual([basename(fileURLToPath(uris.find((u) => u.includes('/red-000'))!))]);
  // The first version called red-000 (truth blue) red; the cell is of the newest version, which does not.
  await page.locator('#confusion .cell[data-truth="blue"][data-predicted="red"]').click();
  expect(await page.locator('#gallery .card').count()).toBe(0);
  await page.locator('#clear-cell').click();
  const flipped = uris.filter((u) => /\/(red|green)-\d+\.\w+$/.test(u));
  await expect(page.locator('#changed-count').textContent()).resolves.toBe(
    `${flipped.length} of 6 images predicted by both got another top-1 label (${((flipped.length / 6) * 100).toFixed(1)}%)`,
  );
  const pairs = page.locator('#changed .pair');
  expect(await pairs.count()).toBe(flipped.length);
  const firstPair = pairs.first();
  const versions = await firstPair.locator('h4').allTextContents();
  expect(versions).toEqual([rows[0]!.model_version, secondVersion[0]!.v]);
  const tops = await firstPair.locator('.topk').evaluateAll((lists) => lists.map((l) => l.querySelector('span')!.textContent));
  expect(new Set(tops)).toEqual(new Set(['red', 'green']));
  // --compare picks the pair, in its order; a value that is not two versions is refused.
  const reversed = join(f.dir, 'reversed.html');
  const both = `${secondVersion[0]!.v},${rows[0]!.model_version}`;
  expect(spawnSync(CLI, ['report', '--out', reversed, '--compare', both, '--config', f.configFile], { encoding: 'utf8', timeout: 120_000 }).status).toBe(0);
  await page.goto(`file://${reversed}`);
  expect(await page.locator('#changed .pair').first().locator('h4').allTextContents()).toEqual([secondVersion[0]!.v, rows[0]!.model_version]);
  const bad = spawnSync(CLI, ['report', '--out', reversed, '--compare', rows[0]!.model_version, '--config', f.configFile], { encoding: 'utf8' });
  expect(bad.status).toBe(2);
  expect(bad.stderr).toMatch(/--compare.*two different prediction versions/);
  await page.close();
}, 180_000);
