/**
 * The canary: before any batch, ML.PREDICT over a few of the bucket's images, with nothing
 * written. A systematic cause (the model's input, its output, the image size, capacity)
 * fails every image the same way; found here, it fails the run with BigQuery's message
 * instead of becoming one failed row per image. When the canary runs, its answer is what
 * the batches rely on: the output column's name and type as the query returned them, one
 * score per label, and whether the scores are probabilities or logits.
 */
import { ErrorType, ObjinferError } from '../../errors';
import { checkClassCount } from '../common/modelCheck';
import { scoreKindOf, type ScoreKind } from '../common/model';
import type { GcpContext } from './context';
import { CANCELLED_REASON, classifyInfo, isPropagationMessage, type GoogleErrorInfo } from './errors';
import { runJob } from './jobs';
import { canarySql, type ModelSignature } from './sql';

/** Images in the canary; when it fails, it is tried again in PARTS parts to tell one bad image from all. */
export const CANARY_SIZE = 16;
const PARTS = 4;

export interface CanaryAnswer {
  /** Images the model answered for (0: the bucket has none BigQuery would accept). */
  images: number;
  /** The output column as ML.PREDICT named it (Google documents a `predicted_` prefix for some models). */
  outputName: string;
  /** Read off the values, when the config leaves it to `auto`. */
  scores?: ScoreKind;
  /** Failures of single parts of the canary, when a part failed and another answered. */
  notes: string[];
}

interface Field {
  name?: string;
  type?: string;
  mode?: string;
}

type Probe = { rows: Record<string, unknown>[]; fields: Field[] } | { error: GoogleErrorInfo };

/** Failures a smaller canary cannot tell apart: they stop the step (and its retries decide). */
function mustStop(error: GoogleErrorInfo): boolean {
  return (
    error.kind === 'transient' ||
    error.kind === 'quota' ||
    isPropagationMessage(error.message) ||
    error.reason === 'accessDenied' ||
    error.reason === 'notFound' ||
    error.reason === CANCELLED_REASON
  );
}

async function probe(ctx: GcpContext, model: ModelSignature, limit: number, offset: number): Promise<Probe> {
  const sql = canarySql(ctx.spec, model, limit, offset);
  const doing = `canary: ML.PREDICT over ${limit} image(s)`;
  const outcome = await ctx.call(doing, () => runJob(ctx.clients.bigquery, ctx.spec.location, { jobId: ctx.statementJobId('canary', sql), query: sql }));
  if (outcome.error) {
    if (mustStop(outcome.error)) throw classifyInfo(outcome.error, doing);
    return { error: outcome.error };
  }
  const [rows, , response] = await ctx.call(doing, () => outcome.job.getQueryResults());
  const fields = ((response as { schema?: { fields?: Field[] } } | undefined)?.schema?.fields ?? []) as Field[];
  return { rows: rows as Record<string, unknown>[], fields };
}

/**
 * Runs the canary: all of it, then, if it fails, each of its parts (and when only one part
 * has images, each of those). Every part with images failing (two or more) fails the run;
 * one answering part, or image, is enough to go on.
 */
export async function runCanary(ctx: GcpContext, model: ModelSignature, labels: string[] | undefined): Promise<CanaryAnswer> {
  const whole = await probe(ctx, model, CANARY_SIZE, 0);
  if (!('error' in whole)) return check(ctx, model, labels, whole, []);
  const size = CANARY_SIZE / PARTS;
  const failures: string[] = [];
  const failed: number[] = [];
  for (let part = 0; part < PARTS; part++) {
    const answer = await probe(ctx, model, size, part * size);
    if ('error' in answer) {
      failures.push(answer.error.message);
      failed.push(part);
    } else if (answer.rows.length > 0)
      return check(
        ctx,
        model,
        labels,
        answer,
        failures.map((m) => `an image of the canary failed: ${m}`),
      );
  }
  if (failures.length === 1) {
    // One part holds every image there is (a small bucket) and failed: try its images one by one.
    const part = failed[0]!;
    const one: string[] = [];
    for (let i = 0; i < size; i++) {
      const answer = await probe(ctx, model, 1, part * size + i);
      if ('error' in answer) one.push(answer.error.message);
      else if (answer.rows.length > 0)
        return check(
          ctx,
          model,
          labels,
          answer,
          [...new Set([...failures, ...one])].map((m) => `an image of the canary failed: ${m}`),
        );
    }
    if (one.length < 2) return { images: 0, outputName: model.outputName, notes: one.map((m) => `the canary's only image failed: ${m}`) };
    failures.push(...one);
  }
  if (failures.length < 2) return { images: 0, outputName: model.outputName, notes: [] };
  const distinct = [...new Set(failures)];
  throw new ObjinferError(
    ErrorType.Refused,
    `every image of the canary failed (ML.PREDICT over ${CANARY_SIZE} images, then each of ${PARTS} parts of ${size}), so no batch ran and nothing was recorded: ` +
      `${distinct.slice(0, 3).join(' | ')}. Check the model's input (${model.inputName}: float32 [batch, ${model.inputSize.join(', ')}, 3] in [0, 1)), ` +
      'model.inputSize, model.preserveAspectRatio and the reservation; if these images are unreadable, remove them and run again',
  );
}

function check(
  ctx: GcpContext,
  model: ModelSignature,
  labels: string[] | undefined,
  answer: { rows: Record<string, unknown>[]; fields: Field[] },
  notes: string[],
): CanaryAnswer {
  const names = answer.fields.map((f) => f.name ?? '');
  const outputName = [model.outputName, `predicted_${model.outputName}`].find((name) => names.includes(name));
  if (!outputName) {
    throw new ObjinferError(
      ErrorType.ModelShapeMismatch,
      `ML.PREDICT returned the columns [${names.join(', ')}], none of them the model's output "${model.outputName}" (or "predicted_${model.outputName}"); set model.output to the one that holds class scores`,
    );
  }
  const field = answer.fields.find((f) => f.name === outputName)!;
  if (field.mode !== 'REPEATED' || !/^(FLOAT|FLOAT64|NUMERIC|BIGNUMERIC)$/.test(field.type ?? '')) {
    throw new ObjinferError(
      ErrorType.ModelShapeMismatch,
      `the model's output "${outputName}" is ${field.mode === 'REPEATED' ? 'an array of ' : ''}${field.type} in ML.PREDICT's result, not an array of class scores; set model.output to the one that holds them`,
    );
  }
  const rows = answer.rows.map((row) => ((row[outputName] as unknown[]) ?? []).map(Number));
  const classes = rows[0]?.length ?? 0;
  const uneven = rows.find((row) => row.length !== classes);
  if (uneven)
    throw new ObjinferError(
      ErrorType.ModelShapeMismatch,
      `the model's output "${outputName}" has ${classes} scores for one image and ${uneven.length} for another`,
    );
  if (labels?.length) checkClassCount(ctx.spec.model, labels, outputName, classes, `(${classes} scores per image in ML.PREDICT's result)`);
  const declared = ctx.spec.model.scores;
  return { images: rows.length, outputName, scores: declared !== 'auto' ? declared : rows.length ? scoreKindOf(rows) : undefined, notes };
}
