/**
 * `objinfer evaluate` and `compare` on the local backend, held to scikit-learn and statsmodels (test/support/references.ts):
 * a warehouse written with the project's own DDL holds generated predictions (tied scores
 * in the top-k, a class never predicted, a label never true, unmapped names, images without
 * ground truth, without a prediction, with a prediction of an earlier generation only, and
 * rows of another prediction version), and every number evaluate gives must equal
 * scikit-learn's on the same images.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { stringify } from 'yaml';
import { objectTableDdl, resultsDdl } from '../src/backends/local/schema';
import { ConfigError, loadConfig, type RunSpec } from '../src/config';
import { compare, evaluate } from '../src/evaluation';
import { mcnemar } from '../src/evaluation/compare';
import { pathPatternRegex } from '../src/evaluation/spec';
import { seededRandom } from '../src/models/random';
import { CLI } from './support/paths';
import { largestDifference, sklearnMetrics, statsmodelsMcNemar, type Classified } from './support/references';

const TRUE_CLASSES = ['daisy', 'dandelion', 'roses', 'sunflowers', 'tulips', 'orchids'];
const MODEL_LABELS = ['daisy', 'dandelion', 'rose', 'sunflower', 'tulip', 'weed', 'grass'];
/** tulips and orchids are left out: compared as they are, so never right. */
const LABEL_MAP: Record<string, string> = { roses: 'rose', sunflowers: 'sunflower' };
const TOP_K = 3;

interface Image {
  uri: string;
  truth?: string;
  /** Labels of the evaluated version, best first; absent: no prediction. */
  ranked?: string[];
  /** The prediction is of an earlier generation of the image. */
  stale?: boolean;
}

function generate(count: number): Image[] {
  const next = seededRandom(20261207); // the same data on every machine
  const pick = <T>(items: T[]) => items[Math.floor(next() * items.length)]!;
  const images: Image[] = [];
  for (let i = 0; i < count; i++) {
    const truth = pick(TRUE_CLASSES.filter((c) => c !== 'orchids' || i % 7 === 0));
    const right = LABEL_MAP[truth] ?? truth;
    const top1 = next() < 0.6 && MODEL_LABELS.includes(right) ? right : pick(MODEL_LABELS.filter((l) => l !== 'grass'));
    const rest = MODEL_LABELS.filter((l) => l !== top1).sort(() => next() - 0.5);
    const image: Image = { uri: `file:///data/flowers/${truth}/img-${String(i).padStart(4, '0')}.jpg`, truth, ranked: [top1, ...rest.slice(0, TOP_K - 1)] };
    if (i % 17 === 0) delete image.ranked; // failed, or not yet run
    if (i % 23 === 0) image.stale = true;
    images.push(image);
  }
  for (let i = 0; i < 25; i++) images.push({ uri: `file:///data/unsorted/${i}.jpg`, ranked: [pick(MODEL_LABELS), 'grass', 'weed'] });
  return images;
}

const sql = (text: string) => `'${text.replace(/'/g, "''")}'`;
const topKSql = (ranked: string[], tie: boolean) =>
  `[${ranked.map((label, p) => `{'label': ${sql(label)}, 'index': ${MODEL_LABELS.indexOf(label)}, 'score': ${tie && p > 0 ? 0.2 : [0.5, 0.3, 0.2][p]}}`).join(', ')}]`;

/** Writes the object table and the results (version v2, and v1 rows that must not count) with the project's DDL. */
async function writeWarehouse(path: string, images: Image[]): Promise<void> {
  const instance = await DuckDBInstance.create(path);
  const db = await instance.connect();
  await db.run('CREATE SCHEMA vision');
  for (const ddl of [...objectTableDdl('vision', 'images'), ...resultsDdl('vision', 'predictions')]) await db.run(ddl);
  const objects = images.map((im) => `(${sql(im.uri)}, 2, 100, now())`);
  await db.run(`INSERT INTO vision.images (uri, generation, size, updated) VALUES ${objects.join(', ')}`);
  const rows: string[] = [];
  images.forEach((im, i) => {
    const row = (version: string, generation: number, ranked: string[]) =>
      `(${sql(im.uri)}, ${generation}, ${sql(version)}, ${sql(ranked[0]!)}, 0.5, ${topKSql(ranked, i % 5 === 0)}, 'run', now() - INTERVAL ${version === 'v1' ? 1 : 0} DAY)`;
    if (im.ranked) rows.push(row('v2', im.stale ? 1 : 2, im.ranked));
    rows.push(row('v1', 2, [...MODEL_LABELS].reverse().slice(0, TOP_K)));
  });
  await db.run(`INSERT INTO vision.predictions (uri, generation, model_version, label, score, top_k, run_id, predicted_at) VALUES ${rows.join(', ')}`);
  db.closeSync();
  instance.closeSync();
}

/** What scikit-learn is given: the images with ground truth and a current prediction, truth mapped. */
function classified(images: Image[]): Classified {
  const scored = images.filter((im) => im.truth && im.ranked && !im.stale);
  return {
    yTrue: scored.map((im) => LABEL_MAP[im.truth!] ?? im.truth!),
    yPred: scored.map((im) => im.ranked![0]!),
    topK: scored.map((im) => im.ranked!),
    k: TOP_K,
  };
}

let dir: string;
let configFile: string;
let spec: RunSpec;
const images = generate(600);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'objinfer-evaluate-'));
  await writeWarehouse(join(dir, 'warehouse.duckdb'), images);
  writeFileSync(join(dir, 'map.json'), JSON.stringify(LABEL_MAP));
  writeFileSync(
    join(dir, 'map.csv'),
    `truth,label\n${Object.entries(LABEL_MAP)
      .map(([a, b]) => `${a},"${b}"`)
      .join('\n')}\n`,
  );
  writeFileSync(
    join(dir, 'truth.csv'),
    `uri,label\n${images
      .filter((im) => im.truth)
      .map((im) => `${im.uri},${im.truth}`)
      .join('\n')}\n`,
  );
  writeFileSync(join(dir, 'model.onnx'), '');
  const config = {
    dataset: 'vision',
    bucket: 'models',
    objectTable: 'images',
    sourceUris: [join(dir, 'images', '*')],
    model: { name: 'flowers', source: 'model.onnx' },
    results: { table: 'predictions', topK: TOP_K },
    local: { warehouse: 'warehouse.duckdb', storage: 'storage' },
    evaluation: { groundTruth: { fromPath: 'flowers/{label}/*' }, labelMap: 'map.json' },
  };
  configFile = join(dir, 'objinfer.yaml');
  writeFileSync(configFile, stringify(config));
  const { evaluation: _, ...withoutEvaluation } = config;
  writeFileSync(join(dir, 'plain.yaml'), stringify(withoutEvaluation));
  spec = loadConfig(configFile, {}, { checkFiles: false });
});

test("evaluate's accuracy, top-k, per-class precision/recall/F1, averages and confusion matrix equal scikit-learn's", async () => {
  const ours = await evaluate(spec);
  const theirs = sklearnMetrics(classified(images));
  expect(ours.modelVersion).toBe('v2');
  expect(ours.confusion.labels).toEqual(theirs.labels);
  expect(ours.classes.map((c) => c.label)).toEqual(theirs.labels);
  const difference = largestDifference(ours, theirs);
  console.log(`evaluate vs scikit-learn ${theirs.labels.length} classes, ${ours.evaluated} images: largest difference ${difference.toExponential(2)}`);
  expect(difference).toBeLessThan(1e-12);
  // The data has what the comparison must cover.
  expect(theirs.support[theirs.labels.indexOf('weed')]).toBe(0); // predicted, never true
  expect(theirs.labels).toContain('tulips'); // unmapped: true, never predicted
  expect(ours.unmapped).toEqual(['daisy', 'dandelion', 'orchids', 'tulips']);
});

test('evaluate counts the images without ground truth, without a prediction, and with only a stale one', async () => {
  const ours = await evaluate(spec);
  const withTruth = images.filter((im) => im.truth);
  expect(ours.images).toBe(images.length);
  expect(ours.withoutGroundTruth).toBe(images.length - withTruth.length);
  expect(ours.withoutPrediction).toBe(withTruth.filter((im) => !im.ranked || im.stale).length);
  expect(ours.evaluated).toBe(classified(images).yTrue.length);
});

test('another version is evaluated on its own rows', async () => {
  const v1 = await evaluate(spec, { modelVersion: 'v1' });
  const reversed = [...MODEL_LABELS].reverse().slice(0, TOP_K);
  const withTruth = images.filter((im) => im.truth);
  const theirs = sklearnMetrics({
    yTrue: withTruth.map((im) => LABEL_MAP[im.truth!] ?? im.truth!),
    yPred: withTruth.map(() => reversed[0]!),
    topK: withTruth.map(() => reversed),
    k: TOP_K,
  });
  expect(largestDifference(v1, theirs)).toBeLessThan(1e-12);
});

test('ground truth from a CSV file, and a CSV label map, give the same evaluation as the path and the JSON map', async () => {
  const fromPath = await evaluate(spec);
  const fromFile = await evaluate(spec, { evaluation: { groundTruth: { kind: 'file', path: join(dir, 'truth.csv') }, labelMap: join(dir, 'map.csv') } });
  expect({ ...fromFile, groundTruth: '' }).toEqual({ ...fromPath, groundTruth: '' });
});

test('a path pattern becomes a regex over the end of the URI, and must name {label} once', () => {
  const match = (pattern: string, uri: string) => new RegExp(pathPatternRegex(pattern)).exec(uri)?.[1];
  expect(match('flowers/{label}/*', 'gs://cloud-samples-data/vision/automl_classification/flowers/roses/1.jpg')).toBe('roses');
  expect(match('flowers/{label}/*', 'gs://b/flowers/roses/sub/1.jpg')).toBeUndefined();
  expect(match('flowers/{label}/**', 'gs://b/flowers/roses/sub/1.jpg')).toBe('roses');
  expect(match('{label}-*.png', 'file:///x/images/red-001.png')).toBe('red');
  expect(match('a.b/{label}.jpg', 'gs://b/axb/red.jpg')).toBeUndefined();
  expect(() => pathPatternRegex('flowers/*')).toThrow(/exactly once as \{label\}/);
  expect(() => pathPatternRegex('{label}/{label}')).toThrow(/exactly once as \{label\}/);
});

test('bad evaluation settings are refused naming the field: a pattern without {label}, a label mapped twice, a file without uri and label', async () => {
  expect(() => loadConfig(configFile, { evaluation: { groundTruth: { fromPath: 'flowers/*' } } }, { checkFiles: false })).toThrow(ConfigError);
  writeFileSync(join(dir, 'twice.csv'), 'truth,label\nroses,rose\nroses,tulip\n');
  await expect(evaluate(spec, { evaluation: { groundTruth: spec.evaluation!.groundTruth, labelMap: join(dir, 'twice.csv') } })).rejects.toThrow(
    /evaluation\.labelMap: .*"roses" is mapped twice/,
  );
  writeFileSync(join(dir, 'wrong.csv'), 'path,class\na,b\n');
  await expect(evaluate(spec, { evaluation: { groundTruth: { kind: 'file', path: join(dir, 'wrong.csv') } } })).rejects.toThrow(
    /evaluation\.groundTruth\.file .*wrong\.csv could not be read as ground truth \(columns uri and label\)/,
  );
});

test('objinfer evaluate: -o json is the evaluation; without ground truth it exits 2 naming evaluation.groundTruth', async () => {
  const json = spawnSync(CLI, ['evaluate', '--config', configFile, '-o', 'json'], { encoding: 'utf8' });
  expect(json.status).toBe(0);
  expect(JSON.parse(json.stdout)).toEqual(JSON.parse(JSON.stringify(await evaluate(spec))));
  // Not --version: that is objinfer's own, and would print it instead.
  const v1 = spawnSync(CLI, ['evaluate', '--config', configFile, '--prediction-version', 'v1', '-o', 'json'], { encoding: 'utf8' });
  expect((JSON.parse(v1.stdout) as { modelVersion: string }).modelVersion).toBe('v1');
  const people = spawnSync(CLI, ['evaluate', '--config', configFile], { encoding: 'utf8', env: { ...process.env, COLUMNS: '100' } });
  expect(people.stdout).toMatch(/^accuracy \d+\.\d%\s+top-1/m);
  const missing = spawnSync(CLI, ['evaluate', '--config', join(dir, 'plain.yaml')], { encoding: 'utf8' });
  expect(missing.status).toBe(2);
  expect(missing.stderr).toMatch(/^objinfer: config error: evaluation\.groundTruth: /);
  const flag = spawnSync(CLI, ['evaluate', '--config', join(dir, 'plain.yaml'), '--truth-from-path', 'flowers/{label}/*', '-o', 'json'], { encoding: 'utf8' });
  expect(flag.status).toBe(0);
  expect((JSON.parse(flag.stdout) as { evaluated: number }).evaluated).toBe(classified(images).yTrue.length);
});

test("McNemar's exact and chi-square tests equal statsmodels', from no discordant image to 790 000", () => {
  const pairs: [number, number][] = [
    [0, 0],
    [1, 0],
    [3, 12],
    [12, 3],
    [10, 10],
    [24, 0],
    [30, 18],
    [500, 530],
    [2900, 3100],
    [40_000, 39_000],
    [400_000, 390_000],
  ];
  const theirs = statsmodelsMcNemar(pairs);
  let largest = 0;
  pairs.forEach(([b, c], i) => {
    const ours = mcnemar(b, c);
    const reference = theirs[i]!;
    largest = Math.max(largest, Math.abs(ours.exactPValue - reference.exactPValue));
    if (reference.chiSquare === null) expect(ours.chiSquare).toBeNull();
    else largest = Math.max(largest, Math.abs(ours.chiSquare! - reference.chiSquare), Math.abs(ours.chiSquarePValue! - reference.chiSquarePValue!));
  });
  console.log(`McNemar vs statsmodels over ${pairs.length} cases: largest difference ${largest.toExponential(2)}`);
  expect(largest).toBeLessThan(1e-12);
});

test('compare v1 v2: what changed, both accuracies (as evaluate gives them) and McNemar on the paired outcomes', async () => {
  const ours = await compare(spec, ['v1', 'v2']);
  const v1Label = [...MODEL_LABELS].reverse()[0]!;
  const current = images.filter((im) => im.ranked && !im.stale);
  expect(ours.both).toBe(current.length);
  expect(ours.onlyA).toBe(images.length - current.length);
  expect(ours.onlyB).toBe(0);
  expect(ours.changed).toBe(current.filter((im) => im.ranked![0] !== v1Label).length);
  const flips = ours.flips.labels.indexOf(v1Label);
  expect(ours.flips.matrix[flips]![ours.flips.labels.indexOf('daisy')]).toBe(current.filter((im) => im.ranked![0] === 'daisy').length);
  const [v1, v2] = [await evaluate(spec, { modelVersion: 'v1' }), await evaluate(spec)];
  const truth = ours.groundTruth!;
  expect(truth.accuracy[1]).toBeCloseTo(v2.accuracy!, 12); // the same images: both versions predicted them all
  const right = (im: Image, label: string) => (LABEL_MAP[im.truth!] ?? im.truth) === label;
  const paired = current.filter((im) => im.truth);
  const b = paired.filter((im) => right(im, v1Label) && !right(im, im.ranked![0]!)).length;
  const c = paired.filter((im) => !right(im, v1Label) && right(im, im.ranked![0]!)).length;
  expect([truth.mcnemar.aRightBWrong, truth.mcnemar.aWrongBRight]).toEqual([b, c]);
  const [reference] = statsmodelsMcNemar([[b, c]]);
  expect(truth.mcnemar.chiSquarePValue).toBeCloseTo(reference!.chiSquarePValue!, 12);
  expect(truth.mcnemar.significant).toBe(true); // v1 answers one label for every image
  expect(v1.accuracy).toBeLessThan(v2.accuracy!);
});

test('objinfer compare names a version no current image has, and exits 2', () => {
  const result = spawnSync(CLI, ['compare', 'v1', 'v9', '--config', configFile], { encoding: 'utf8' });
  expect(result.status).toBe(2);
  expect(result.stderr).toMatch(/^objinfer: no current image has a prediction of version v9/);
  const csv = spawnSync(CLI, ['compare', 'v1', 'v2', '--config', configFile, '-o', 'csv'], { encoding: 'utf8' });
  expect(csv.status).toBe(0);
  expect(csv.stdout.split('\r\n')[0]).toBe('from,to,images'); // RFC 4180 line ends
});
