/**
 * What a gcp run would do, step by step, for `objinfer plan`: every API call and every
 * statement as it would be sent. With credentials, BigQuery dry-runs the statements whose
 * tables exist and reports the bytes each would process, per batch and for the run. Runs
 * over object tables use a reservation (capacity pricing): bytes are a guide to the work,
 * slot time is what is paid.
 */
import type { PlannedCall } from '../port';
import { OBJECT_VIEWER } from '../common/iam';
import type { GcpContext } from './context';
import { namedParameters } from './jobs';
import { PROJECT_PERMISSIONS, RESERVATION_PERMISSIONS, STORAGE_PERMISSIONS } from './permissions';
import {
  batchBoundsSql,
  countPendingSql,
  createModelSql,
  createObjectTableSql,
  fillPendingSql,
  loadLabelsSql,
  predictBatchSql,
  refreshObjectTableSql,
} from './sql';

const RUN = 'RUN_ID';

export async function describePlan(ctx: GcpContext, options: { dryRun?: boolean } = {}): Promise<PlannedCall[]> {
  const { spec, connectionName } = ctx;
  const { project, dataset, location, bucket, model, results, batch } = spec;
  const permissions = PROJECT_PERMISSIONS.length + STORAGE_PERMISSIONS.length + (spec.reservation ? RESERVATION_PERMISSIONS.length : 0);
  const dryRun = options.dryRun ?? true;
  const placeholder = { inputName: 'INPUT', outputName: 'OUTPUT', inputSize: model.inputSize ?? ([224, 224] as [number, number]) };
  const signature = dryRun ? await importedSignature(ctx, placeholder) : placeholder;
  const modelPath = model.source.startsWith('gs://')
    ? model.type === 'ONNX'
      ? model.source
      : `${model.source}*`
    : `gs://${bucket}/models/${model.name}/CONTENT/${model.type === 'ONNX' ? 'model.onnx' : '*'}`;
  const calls: PlannedCall[] = [
    {
      step: 'preflight',
      call: `POST cloudresourcemanager.googleapis.com/v3/projects/${project}:testIamPermissions (${permissions} permissions; storage ones also on gs://${bucket} when it exists)`,
    },
    {
      step: 'preflight',
      call:
        `GET bigqueryreservation.googleapis.com/v1/projects/${project}/locations/${location}:searchAllAssignments?query=assignee=projects/${project}` +
        (spec.reservation
          ? ''
          : " (the project's QUERY assignment, else its closest ancestor's), then GET its reservation: ACTIVE, Enterprise or Enterprise Plus, with slots"),
    },
    { step: 'dataset', call: `GET, then if missing POST bigquery datasets ${project}.${dataset} (location ${location})` },
    ...(spec.reservation
      ? [
          {
            step: 'reservation',
            call: `GET, then if missing POST reservations ${spec.reservation.name} (${spec.reservation.edition}, ${spec.reservation.slots} slots); POST a QUERY assignment of projects/${project} unless one exists`,
          },
        ]
      : []),
    { step: 'connection', call: `GET, then if missing POST bigqueryconnection ${connectionName} (Cloud resource)` },
    { step: 'bucket', call: `GET, then if missing POST storage buckets gs://${bucket}` },
    { step: 'grant', call: `GET + PUT storage buckets/*/iam: ${OBJECT_VIEWER} for the connection's service account` },
    {
      step: 'upload model',
      call: model.source.startsWith('gs://') ? `use ${model.source} in place` : `PUT gs://${bucket}/models/${model.name}/CONTENT/... (files whose MD5 differs)`,
    },
    { step: 'object table', call: createObjectTableSql(spec) },
    { step: 'object table', call: refreshObjectTableSql(spec) },
    { step: 'model', call: `${createModelSql(spec, modelPath)}\n-- then PATCH the model's labels: objinfer_model = CONTENT` },
    { step: 'describe model', call: `GET bigquery models ${project}.${dataset}.${model.name}` },
    {
      step: 'tables',
      call: `POST bigquery tables (if missing): ${results.table}, ${results.errorsTable} (clustered by model_version, uri), ${results.labelsTable}`,
    },
    { step: 'labels', call: loadLabelsSql(spec) },
    { step: 'plan', call: `POST bigquery tables ${dataset}._objinfer_pending_${RUN} (clustered by rank, expires in 7 days)` },
    { step: 'plan', call: fillPendingSql(spec, RUN) },
    { step: 'plan', call: countPendingSql(spec, RUN) },
    {
      step: 'infer',
      call: predictBatchSql(spec, signature, { count: 1, index: 0, ranks: [0, batch.size] }, RUN),
      estimateNote: `per batch of up to ${batch.size} objects, after reading its URI range (@uri_lo, @uri_hi) with ${batchBoundsSql(spec, { count: 1, index: 0, ranks: [0, batch.size] }, RUN)}; two jobs per batch: k = ceil(pending / ${batch.size})`,
    },
  ];
  if (dryRun) await estimate(ctx, calls);
  calls.push(await runTotal(ctx, calls.at(-1)!.estimatedBytes, dryRun));
  return calls;
}

/** Jobs a run issues besides its batches: object table, refresh, model, canary, labels, the plan's two. */
export const FIXED_JOBS = 7;

/**
 * The run in all, from the cost model (docs/gcp.md): 7 jobs and 2 per batch. With credentials
 * and an object table from an earlier run, its listed objects are counted (the cached listing,
 * a small read) as the most there can be to do, and the batch's dry-run bytes multiplied out.
 */
async function runTotal(ctx: GcpContext, perBatch: number | undefined, dryRun: boolean): Promise<PlannedCall> {
  const size = ctx.spec.batch.size;
  const formula = `jobs: ${FIXED_JOBS} + 2 x ceil(P / ${size}) for P objects to do (and about 5 + 3 log2 ${size} more per image that fails)`;
  const objects = dryRun ? await countListed(ctx) : undefined;
  if (objects === undefined) return { step: 'run total', call: `${formula}; P is known once the object table exists (after a first run, or its provisioning)` };
  const batches = Math.ceil(objects / size);
  const bytes = perBatch === undefined ? '' : `; bytes: at most ${perBatch} a batch (its dry run over the whole listing), ${perBatch * batches} in all`;
  return {
    step: 'run total',
    call: `${formula}; the object table lists ${objects} objects, so at most ${batches} batches and ${FIXED_JOBS + 2 * batches} jobs${bytes}`,
  };
}

async function countListed(ctx: GcpContext): Promise<number | undefined> {
  if (!ctx.hasCredentials) return undefined;
  const { project, dataset, objectTable } = ctx.spec;
  try {
    const [rows] = await ctx.clients.bigquery.query({
      query: `SELECT COUNT(*) AS n FROM \`${project}.${dataset}.${objectTable}\``,
      location: ctx.spec.location,
    });
    return Number((rows[0] as { n: number | string }).n);
  } catch {
    return undefined; // no object table yet, or BigQuery cannot be reached: the formula stands alone
  }
}

/**
 * A statement over the run's pending table, with that table (made by a run's plan) replaced
 * by the object table it is made from: the same columns, so a dry run can size a batch
 * before any run (an upper bound: it reads the whole listing).
 */
function withoutPendingTable(ctx: GcpContext, sql: string): string {
  const { project, dataset, objectTable } = ctx.spec;
  const pending = `\`${project}.${dataset}._objinfer_pending_${RUN}\``;
  const source = `(SELECT o.uri, o.generation, o.content_type, o.size, 'pending' AS status, 0 AS rank FROM \`${project}.${dataset}.${objectTable}\` AS o)`;
  // Filling the pending table: its query is what reads (a subquery cannot be an INSERT's target).
  const query = sql.startsWith(`INSERT INTO ${pending}`) ? sql.slice(sql.indexOf('\n') + 1) : sql;
  return query.replaceAll(pending, source);
}

/**
 * The imported model's feature and output names when an earlier run imported it (BigQuery
 * refuses a dry run of ML.PREDICT that does not feed the model's own feature column);
 * otherwise placeholders, and the batch keeps no estimate.
 */
async function importedSignature<T extends { inputName: string; outputName: string }>(ctx: GcpContext, placeholder: T): Promise<T> {
  if (!ctx.hasCredentials) return placeholder;
  try {
    const [metadata] = await ctx.dataset.model(ctx.spec.model.name).getMetadata();
    const inputName = metadata.featureColumns?.[0]?.name as string | undefined;
    const outputName = ctx.spec.model.output ?? (metadata.labelColumns?.[0]?.name as string | undefined);
    return inputName && outputName ? { ...placeholder, inputName, outputName } : placeholder;
  } catch {
    return placeholder; // not imported yet, or BigQuery unreachable: the estimates say so
  }
}

/**
 * Dry-runs what can be dry-run now; a statement whose tables do not exist yet keeps no
 * estimate. Without credentials, or once BigQuery cannot be reached, it stops: the plan's
 * statements are what matters, and each further try would wait out the same failure.
 */
async function estimate(ctx: GcpContext, calls: PlannedCall[]): Promise<void> {
  if (!ctx.hasCredentials) return;
  for (const call of calls) {
    if (!/^(SELECT|CREATE OR REPLACE TABLE|INSERT)/.test(call.call)) continue;
    try {
      const [job] = await ctx.clients.bigquery.createQueryJob({
        query: withoutPendingTable(ctx, call.call),
        dryRun: true,
        location: ctx.spec.location,
        ...namedParameters({
          model_version: '',
          run_id: '',
          ...(call.call.includes('@uri_lo') ? { uri_lo: '', uri_hi: '' } : {}),
          ...(call.call.includes('@labels') ? { labels: [] } : {}),
        }),
      });
      const bytes = (job.metadata as { statistics?: { totalBytesProcessed?: string } }).statistics?.totalBytesProcessed;
      if (bytes !== undefined) call.estimatedBytes = Number(bytes);
    } catch (error) {
      const status = (error as { code?: unknown }).code;
      // A refusal of the statement (e.g. 404: a table a first run creates) has an HTTP status; anything else ends the estimates.
      if (typeof status !== 'number' || status === 401 || status === 403) return;
    }
  }
}
