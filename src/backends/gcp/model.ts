/**
 * The model: its files uploaded under a folder named by their content (or used in place),
 * imported with CREATE MODEL only when that content changed, and described.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { ErrorType, ObjinferError } from '../../errors';
import { savedModelFiles } from '../../models/savedModel';
import type { ModelArtifact, ModelDescription, StepOutcome } from '../../workflows/contract';
import { chooseOutput, parseLabels, predictionVersion } from '../common/model';
import { bucketOf } from './bucket';
import type { GcpContext } from './context';
import { runCanary } from './canary';
import { createModelSql } from './sql';

/** The model's files (an ONNX file, or a SavedModel folder), relative name -> local path. */
async function modelFiles(source: string, type: string): Promise<{ name: string; path: string }[]> {
  const info = await stat(source);
  if (!info.isDirectory()) return [{ name: type === 'ONNX' ? 'model.onnx' : relative(join(source, '..'), source), path: source }];
  return savedModelFiles(source);
}

/** The labels file's lines, from a local path or gs://. */
export async function readLabelsSource(ctx: GcpContext): Promise<string[] | undefined> {
  const source = ctx.spec.model.labels;
  if (!source) return undefined;
  if (!source.startsWith('gs://')) return parseLabels(await readFile(source, 'utf8'));
  const [bytes] = await ctx.call(`read model.labels ${source}`, () =>
    ctx.clients.storage
      .bucket(bucketOf(source))
      .file(source.replace(/^gs:\/\/[^/]+\//, ''))
      .download(),
  );
  return parseLabels(bytes.toString('utf8'));
}

/**
 * Uploads the model's files under a folder named by their content (files already there
 * with the same MD5 are skipped), or uses a gs:// model in place. The artifact's version is
 * the prediction version; its content digest names the BigQuery model's content.
 */
export async function uploadModel(ctx: GcpContext): Promise<ModelArtifact> {
  const { model, bucket } = ctx.spec;
  const labels = await readLabelsSource(ctx);
  if (model.source.startsWith('gs://')) return modelInPlace(ctx, labels);
  return ctx.call(`upload model ${model.name}`, async () => {
    const files = await modelFiles(model.source, model.type);
    const hash = createHash('sha256');
    const contents = new Map<string, Buffer>();
    for (const file of files) {
      const bytes = await readFile(file.path);
      contents.set(file.name, bytes);
      hash.update(file.name).update(bytes);
    }
    const digest = hash.digest('hex').slice(0, 12);
    const prefix = `models/${model.name}/${digest}/`;
    let uploaded = 0;
    for (const file of files) {
      const object = ctx.clients.storage.bucket(bucket).file(prefix + file.name);
      const bytes = contents.get(file.name)!;
      const md5 = createHash('md5').update(bytes).digest('base64');
      const [exists] = await object.exists();
      if (exists) {
        const [metadata] = await object.getMetadata();
        if (metadata.md5Hash === md5) continue;
      }
      await object.save(bytes, { resumable: false, validation: 'md5' });
      await ctx.record('object', `${bucket}/${prefix}${file.name}`);
      uploaded++;
    }
    const base = `gs://${bucket}/${prefix}`;
    const version = predictionVersion(digest, labels, ctx.spec);
    return {
      step: 'upload model',
      action: uploaded > 0 ? 'created' : 'exists',
      detail: `${files.length} file(s) -> ${base} (${uploaded} uploaded; prediction version ${version})`,
      version,
      contentDigest: digest,
      uri: model.type === 'ONNX' ? `${base}model.onnx` : `${base}*`,
      filesUploaded: uploaded,
      filesSkipped: files.length - uploaded,
    };
  });
}

/** A model already in Cloud Storage: used in place, its content named by its objects' MD5s. */
async function modelInPlace(ctx: GcpContext, labels: string[] | undefined): Promise<ModelArtifact> {
  const { model } = ctx.spec;
  return ctx.call(`model ${model.source}`, async () => {
    const prefix = model.source.replace(/^gs:\/\/[^/]+\//, '');
    const [objects] = await ctx.clients.storage.bucket(bucketOf(model.source)).getFiles({ prefix });
    if (objects.length === 0) throw new ObjinferError(ErrorType.NotFound, `model.source: nothing at ${model.source}`);
    const hash = createHash('sha256');
    for (const object of objects) hash.update(object.name).update(String(object.metadata.md5Hash ?? ''));
    const digest = hash.digest('hex').slice(0, 12);
    // A SavedModel folder (config normalises it to end in "/") is imported as folder/*.
    const uri = model.type === 'ONNX' ? model.source : `${model.source}*`;
    return {
      step: 'upload model',
      action: 'skipped',
      detail: `used in place: ${model.source}`,
      version: predictionVersion(digest, labels, ctx.spec),
      contentDigest: digest,
      uri,
      filesUploaded: 0,
      filesSkipped: objects.length,
    };
  });
}

/** The label that tells which model content a BigQuery model holds. */
const CONTENT_LABEL = 'objinfer_model';

/** Replaced only when the model's content changed; the content rides on the model as a label (models API). */
export async function ensureModel(ctx: GcpContext, artifact: ModelArtifact): Promise<StepOutcome> {
  const { model } = ctx.spec;
  const handle = ctx.dataset.model(model.name);
  return ctx.call(`model ${model.name}`, async (): Promise<StepOutcome> => {
    const [exists] = await handle.exists();
    let previous: string | undefined;
    if (exists) {
      const [metadata] = await handle.getMetadata();
      previous = metadata.labels?.[CONTENT_LABEL];
      if (previous === artifact.contentDigest) return { step: 'model', action: 'exists', detail: `${model.name} (content ${artifact.contentDigest})` };
    }
    const sql = createModelSql(ctx.spec, artifact.uri);
    await ctx.statement(`model ${model.name}`, ctx.statementJobId('model', sql), sql);
    await handle.setMetadata({ labels: { [CONTENT_LABEL]: artifact.contentDigest } });
    if (!exists) await ctx.record('model', model.name);
    return {
      step: 'model',
      action: exists ? 'updated' : 'created',
      detail: `${model.name} model_type=${model.type} model_path=${artifact.uri}${previous ? ` (was content ${previous})` : ''}`,
    };
  });
}

/**
 * Feature and label column names from the models API, the image size from the config; then
 * the canary (canary.ts) confirms the output column as ML.PREDICT returns it, checks one
 * score per label, and reads whether the scores are logits.
 */
export async function describeModel(ctx: GcpContext, artifact: ModelArtifact): Promise<ModelDescription> {
  const { model } = ctx.spec;
  const [metadata] = await ctx.call(`describe model ${model.name}`, () => ctx.dataset.model(model.name).getMetadata());
  const inputName = metadata.featureColumns?.[0]?.name;
  const outputs = (metadata.labelColumns ?? []).map((c: { name?: string; type?: { typeKind?: string } }) => ({
    name: String(c.name),
    rank: c.type?.typeKind === 'ARRAY' ? 2 : 1,
  }));
  if (!inputName || outputs.length === 0) {
    throw new ObjinferError(
      ErrorType.ModelShapeMismatch,
      `model ${model.name} has no feature or label columns (features: ${JSON.stringify(metadata.featureColumns ?? [])}); is it an image classifier?`,
    );
  }
  const labels = await readLabelsSource(ctx);
  const choice = chooseOutput(outputs, model.output, labels?.length || undefined);
  if ('error' in choice) throw new ObjinferError(ErrorType.ModelShapeMismatch, choice.error);
  if (!model.inputSize) {
    throw new ObjinferError(
      ErrorType.InvalidConfig,
      "model.inputSize: BigQuery does not report an imported model's image size; set it (224 for the tutorial's ResNet-50)",
    );
  }
  const canary = await runCanary(ctx, { inputName, outputName: choice.name, inputSize: model.inputSize }, labels);
  return {
    version: artifact.version,
    inputName,
    outputName: canary.outputName,
    outputNames: outputs.map((o: { name: string }) => o.name),
    inputSize: model.inputSize,
    classCount: labels?.length ?? 0,
    ...(canary.scores ? { scores: canary.scores } : {}),
    modelUri: artifact.uri,
    ...(canary.notes.length ? { warnings: canary.notes } : {}),
  };
}
