/**
 * Provisioning on one machine: the dataset is a DuckDB schema, the bucket a folder, the
 * connection and its grants rows in the warehouse, the model an ONNX file copied into the
 * bucket under its version.
 */
import { mkdir, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { ErrorType, ObjinferError } from '../../errors';
import { decoderPool } from '../../images/decoderPool';
import type { ConnectionInfo, ModelArtifact, ModelDescription, PreflightReport, StepOutcome } from '../../workflows/contract';
import { OBJECT_VIEWER } from '../common/iam';
import { parseLabels, predictionVersion, scoreKindOf, type ScoreKind } from '../common/model';
import { seededRandom } from '../../models/random';
import type { LocalContext } from './context';
import { findGrant } from './iam';
import { reportDoing } from '../waiting';
import { saveDigests } from './digest';
import { checkModel, type CheckedModel } from './modelCheck';
import { modelSource } from './modelSource';
import { classify, loadSession, signature } from './runtime';
import { errorsDdl, labelsDdl, resultsDdl, resultsWithoutIndex } from './schema';
import { copyIfChanged, patternRoot, pathToUri, uriToPath } from './storage';
import { quote } from './warehouse';

export async function preflight(ctx: LocalContext): Promise<PreflightReport> {
  const { spec } = ctx;
  for (const uri of spec.sourceUris) {
    const root = patternRoot(uri);
    const info = await stat(root).catch(() => undefined);
    if (!info?.isDirectory()) {
      throw new ObjinferError(ErrorType.InvalidConfig, `sourceUris: folder not found on the worker: ${root}; point the pattern at an existing folder`);
    }
  }
  for (const [field, path] of [
    ['model.source', spec.model.source],
    ['model.labels', spec.model.labels],
  ] as const) {
    if (path && !(await stat(path).catch(() => undefined))) {
      throw new ObjinferError(ErrorType.InvalidConfig, `${field}: file not found on the worker: ${path}`);
    }
  }
  await ctx.use(async () => undefined); // the warehouse opens (or says why not) before anything is made
  return { warnings: [] };
}

export async function ensureDataset(ctx: LocalContext): Promise<StepOutcome> {
  const { dataset, location } = ctx.spec;
  return ctx.transaction(async (db) => {
    const existing = await db.one<{ location: string }>('SELECT location FROM _objinfer.datasets WHERE name = $1', [dataset]);
    if (existing && existing.location !== location) {
      throw new ObjinferError(
        ErrorType.ResourceConflict,
        `dataset ${dataset} exists in location ${existing.location}, not ${location}; set location: ${existing.location} or choose another dataset`,
      );
    }
    await db.run(`CREATE SCHEMA IF NOT EXISTS ${quote(dataset)}`);
    if (existing) return { step: 'dataset', action: 'exists', detail: `${dataset} (${location})` };
    await db.run('INSERT INTO _objinfer.datasets VALUES ($1, $2, now())', [dataset, location]);
    return { step: 'dataset', action: 'created', detail: `${dataset} (${location})` };
  });
}

export async function ensureConnection(ctx: LocalContext): Promise<ConnectionInfo> {
  const { project, location, connection } = ctx.spec;
  const serviceAccount = ctx.serviceAccount;
  const created = await ctx.transaction(async (db) => {
    const key = [project, location, connection];
    if (await db.one('SELECT 1 FROM _objinfer.connections WHERE project = $1 AND location = $2 AND name = $3', key)) return false;
    await db.run('INSERT INTO _objinfer.connections VALUES ($1, $2, $3, $4, now())', [...key, serviceAccount]);
    return true;
  });
  const detail = `${project}.${location}.${connection} (service account ${serviceAccount})`;
  return { step: 'connection', action: created ? 'created' : 'exists', detail, serviceAccount };
}

export async function ensureBucket(ctx: LocalContext): Promise<StepOutcome> {
  const existed = await stat(ctx.bucketPath).then(
    (s) => s.isDirectory(),
    () => false,
  );
  await mkdir(ctx.bucketPath, { recursive: true });
  if (!existed) await ctx.use((db) => db.run('INSERT OR IGNORE INTO _objinfer.buckets VALUES ($1, now())', [ctx.bucketPath]));
  return { step: 'bucket', action: existed ? 'exists' : 'created', detail: ctx.bucketPath };
}

export async function grantObjectViewer(ctx: LocalContext, serviceAccount: string): Promise<StepOutcome[]> {
  const member = `serviceAccount:${serviceAccount}`;
  return ctx.transaction(async (db) => {
    const outcomes: StepOutcome[] = [];
    for (const bucket of [ctx.bucketUri, ...ctx.imageBuckets]) {
      const detail = `${OBJECT_VIEWER} for ${member} on ${bucket}`;
      if (await findGrant(db, bucket, serviceAccount)) {
        outcomes.push({ step: 'grant', action: 'exists', detail });
        continue;
      }
      await db.run('INSERT INTO _objinfer.grants VALUES ($1, $2, $3, now())', [bucket, member, OBJECT_VIEWER]);
      outcomes.push({ step: 'grant', action: 'created', detail });
    }
    return outcomes;
  });
}

/** The model's folder in the bucket for a version. */
function versionFolder(ctx: LocalContext, version: string): string {
  return join(ctx.bucketPath, 'models', ctx.spec.model.name, version);
}

/** Copies the model and its labels into the bucket under the prediction version (unless already there). */
export async function uploadModel(ctx: LocalContext): Promise<ModelArtifact> {
  const { model } = ctx.spec;
  const labels = model.labels ? parseLabels(await readFile(model.labels, 'utf8')) : undefined;
  const source = await modelSource(model, reportDoing);
  const version = predictionVersion(source.digest, labels, ctx.spec);
  const folder = versionFolder(ctx, version);
  const files = [{ source: source.onnx, name: 'model.onnx' }];
  if (model.labels) files.push({ source: model.labels, name: 'labels.txt' });
  let uploaded = 0;
  for (const file of files) {
    if (await copyIfChanged(file.source, join(folder, file.name))) uploaded++;
  }
  saveDigests(); // the model's and its copy's, for the next process: a run is one (digest.ts)
  return {
    step: 'upload model',
    action: uploaded > 0 ? 'created' : 'exists',
    detail: `${basename(model.source)}${
      source.conversion
        ? ` (SavedModel, as ONNX: ${source.conversion.converted ? 'converted now' : 'converted before'}, ` +
          `within ${source.conversion.check.maxAbsDifference.toExponential(1)} of TensorFlow)`
        : ''
    } -> ${pathToUri(folder)}/ (version ${version})`,
    version,
    // The copy holds these bytes (copyIfChanged): its session is the model's (runtime.ts loadSession).
    contentDigest: source.digest,
    uri: pathToUri(join(folder, 'model.onnx')),
    filesUploaded: uploaded,
    filesSkipped: files.length - uploaded,
  };
}

export async function ensureModel(ctx: LocalContext, artifact: ModelArtifact): Promise<StepOutcome> {
  const { dataset, model } = ctx.spec;
  return ctx.transaction(async (db) => {
    const existing = await db.one<{ version: string }>('SELECT version FROM _objinfer.models WHERE dataset = $1 AND name = $2', [dataset, model.name]);
    const detail = `${dataset}.${model.name} model_type=${model.type} model_path=${artifact.uri}`;
    if (existing?.version === artifact.version) return { step: 'model', action: 'exists', detail };
    await db.run('INSERT OR REPLACE INTO _objinfer.models VALUES ($1, $2, $3, $4, $5, now())', [
      dataset,
      model.name,
      artifact.version,
      model.type,
      artifact.uri,
    ]);
    return { step: 'model', action: existing ? 'updated' : 'created', detail: existing ? `${detail} (was version ${existing.version})` : detail };
  });
}

/** Input and output names, input size and class count, read from the ONNX file itself. */
export async function describeModel(ctx: LocalContext, artifact: ModelArtifact): Promise<ModelDescription> {
  await ctx.use((db) => ctx.assertCanRead(db, [ctx.bucketUri]));
  const modelPath = uriToPath(artifact.uri);
  decoderPool().start(); // beside the model's load, which keeps one core busy
  const session = await loadSession(modelPath, ctx.spec.model.source, artifact.contentDigest);
  const { inputs, outputs } = signature(session);
  const labels = ctx.spec.model.labels ? parseLabels(await readFile(join(modelPath, '..', 'labels.txt'), 'utf8')) : undefined;
  const checked = checkModel(inputs, outputs, ctx.spec.model, labels);
  const { scores } = ctx.spec.model;
  return {
    version: artifact.version,
    inputName: checked.inputName,
    outputName: checked.outputName,
    outputNames: checked.outputNames,
    inputSize: checked.inputSize,
    classCount: checked.classCount,
    ...(checked.maxBatch ? { maxBatch: checked.maxBatch } : {}),
    scores: scores === 'auto' ? await probeScores(session, checked) : scores,
    modelUri: artifact.uri,
    ...(artifact.contentDigest ? { contentDigest: artifact.contentDigest } : {}),
  };
}

/**
 * What the model's output holds, read off its answers for two images (mid-grey, and seeded
 * noise): the same for every run of this model, whose bytes the prediction version holds.
 */
async function probeScores(session: Awaited<ReturnType<typeof loadSession>>, model: CheckedModel): Promise<ScoreKind> {
  const [height, width] = model.inputSize;
  const random = seededRandom(34);
  const images = [() => 0.5, () => random()].map((pixel) => Float32Array.from({ length: height * width * 3 }, pixel));
  const rows: ArrayLike<number>[] = [];
  for (const pixels of images) rows.push(...(await classify(session, model, pixels, [1, height, width, 3])));
  return scoreKindOf(rows);
}

export async function ensureResultTables(ctx: LocalContext, model: ModelDescription): Promise<StepOutcome[]> {
  const { dataset, results } = ctx.spec;
  const labelsFile = join(uriToPath(model.modelUri), '..', 'labels.txt');
  const labels = ctx.spec.model.labels ? parseLabels(await readFile(labelsFile, 'utf8')) : [];
  return ctx.transaction(async (db) => {
    const outcomes: StepOutcome[] = [];
    for (const [name, ddl] of [
      [results.table, resultsDdl(dataset, results.table)],
      [results.errorsTable, errorsDdl(dataset, results.errorsTable)],
      [results.labelsTable, labelsDdl(dataset, results.labelsTable)],
    ] as const) {
      const existed = await db.tableExists(dataset, name);
      for (const statement of ddl) await db.run(statement);
      if (existed && name === results.table && (await db.hasPrimaryKey(dataset, name))) {
        for (const statement of resultsWithoutIndex(dataset, name)) await db.run(statement);
        outcomes.push({
          step: 'table',
          action: 'updated',
          detail: `${dataset}.${name} (rebuilt without its primary-key index, which every write re-saved whole; rows kept)`,
        });
        continue;
      }
      outcomes.push({ step: 'table', action: existed ? 'exists' : 'created', detail: `${dataset}.${name}` });
    }
    await db.insertRows(
      `INSERT OR IGNORE INTO ${ctx.table(results.labelsTable)}`,
      ['', '', ''],
      labels.map((label, index) => [model.version, index, label]),
    );
    return outcomes;
  });
}
