/**
 * The object table: `CREATE EXTERNAL TABLE ... WITH CONNECTION` over the source URIs, with
 * metadata caching refreshed by hand once per run. The refresh lists the objects through
 * the connection, so it is also where a fresh grant shows (IAM propagation), and batches
 * then read the listing from the cache: one listing per run, whatever the batch count.
 */
import { createHash } from 'node:crypto';
import { ErrorType, ObjinferError } from '../../errors';
import type { StepOutcome } from '../../workflows/contract';
import type { GcpContext } from './context';
import { unreachableBuckets } from './bucket';
import { classifyInfo } from './errors';
import { runJob } from './jobs';
import { createObjectTableSql, OBJECT_TABLE_STALENESS, refreshObjectTableSql } from './sql';

/** Refresh jobs one step may start (each a new try after one that failed). */
const MAX_REFRESH_JOBS = 100;

/**
 * The metadata refresh, which "can take several minutes" for millions of files: a job named by
 * the step (`stepKey`), so an attempt that outlives its worker or its timeout is followed by one
 * that waits on the same job. A job that failed (a grant still propagating) is not waited on
 * again: the next try starts the next job of the step.
 */
async function refreshListing(ctx: GcpContext, stepKey: string | undefined): Promise<void> {
  const sql = refreshObjectTableSql(ctx.spec);
  const doing = `list the objects of ${ctx.spec.objectTable} through the connection`;
  if (!stepKey) {
    await ctx.statement(doing, ctx.statementJobId('refresh', sql), sql);
    return;
  }
  const key = createHash('sha256').update(`${stepKey}\n${sql}`).digest('hex').slice(0, 16);
  for (let n = 1; n <= MAX_REFRESH_JOBS; n++) {
    const outcome = await ctx.call(doing, () => runJob(ctx.clients.bigquery, ctx.spec.location, { jobId: `objinfer_refresh_${key}_${n}`, query: sql }));
    if (!outcome.error) return;
    if (!outcome.attached) throw classifyInfo(outcome.error, doing);
  }
  throw new ObjinferError(ErrorType.StepFailed, `${doing}: ${MAX_REFRESH_JOBS} refresh jobs of this step failed`);
}

/**
 * A "cannot read" that looks like a grant still propagating, but on an image bucket that is
 * neither the user's (objinfer granted nothing there) nor public: waiting would not help.
 */
async function notYoursToGrant(ctx: GcpContext, error: unknown): Promise<ObjinferError | undefined> {
  if (!(error instanceof ObjinferError) || error.type !== ErrorType.IamPropagationPending) return undefined;
  const buckets = await ctx.call('check the image buckets', () => unreachableBuckets(ctx));
  if (buckets.length === 0) return undefined;
  const [connection] = await ctx.call('read the connection', () => ctx.clients.connections.getConnection({ name: ctx.connectionName }));
  const account = connection.cloudResource?.serviceAccountId ?? "the connection's service account";
  return new ObjinferError(
    ErrorType.PermissionDenied,
    `BigQuery cannot read ${buckets.map((b) => `gs://${b}`).join(', ')} through the connection, and ${buckets.length === 1 ? 'it is' : 'they are'} neither yours nor public, ` +
      `so objinfer could grant nothing there: ask the owner to grant roles/storage.objectViewer to serviceAccount:${account}, then run again`,
  );
}

/**
 * A connection ID in any of the forms BigQuery uses: `{project}.{location};{id}` and
 * `projects/{project}/locations/{location}/connections/{id}` (bigquery.v2's discovery document),
 * and `{project}.{location}.{id}` (the DDL's). Undefined when it is none of them.
 */
export function parseConnectionId(value: string): { project: string; location: string; id: string } | undefined {
  const path = value.match(/^projects\/([^/]+)\/locations\/([^/]+)\/connections\/([^/]+)$/);
  const dotted = value.match(/^(.+)\.([^.;]+)[;.]([^.;]+)$/);
  const [, project, location, id] = path ?? dotted ?? [];
  return project && location && id ? { project, location: location.toLowerCase(), id } : undefined;
}

function sameConnectionId(value: string, spec: GcpContext['spec']): boolean {
  const found = parseConnectionId(value);
  return found?.project === spec.project && found.location === spec.location.toLowerCase() && found.id === spec.connection;
}

export async function ensureObjectTable(ctx: GcpContext, stepKey?: string): Promise<StepOutcome> {
  const { objectTable, sourceUris, dataset } = ctx.spec;
  const table = ctx.dataset.table(objectTable);
  const action = await ctx.call(`object table ${objectTable}`, async (): Promise<StepOutcome['action']> => {
    const [exists] = await table.exists();
    if (exists) {
      const [metadata] = await table.getMetadata();
      const external = metadata.externalDataConfiguration ?? {};
      const sameUris = JSON.stringify(external.sourceUris ?? []) === JSON.stringify(sourceUris);
      const sameConnection = sameConnectionId(String(external.connectionId ?? ''), ctx.spec);
      const cached = external.metadataCacheMode === 'MANUAL' && metadata.maxStaleness === OBJECT_TABLE_STALENESS;
      if (sameUris && sameConnection && cached) return 'exists';
    }
    const sql = createObjectTableSql(ctx.spec);
    await ctx.statement(`object table ${objectTable}`, ctx.statementJobId('object_table', sql), sql);
    if (!exists) await ctx.record('table', objectTable);
    return exists ? 'updated' : 'created';
  });
  await refreshListing(ctx, stepKey).catch(async (error: unknown) => {
    throw (await notYoursToGrant(ctx, error)) ?? error;
  });
  return { step: 'object table', action, detail: `${dataset}.${objectTable} over ${sourceUris.join(', ')} (listing refreshed)` };
}
