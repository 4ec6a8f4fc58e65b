/**
 * The object table: `CREATE EXTERNAL TABLE ... WITH CONNECTION` over the source URIs, with
 * metadata caching refreshed by hand once per run. The refresh lists the objects through
 * the connection, so it is also where a fresh grant shows (IAM propagation), and batches
 * then read the listing from the cache: one listing per run, whatever the batch count.
 */
import type { StepOutcome } from '../../workflows/contract';
import type { GcpContext } from './context';
import { createObjectTableSql, refreshObjectTableSql } from './sql';

export async function ensureObjectTable(ctx: GcpContext): Promise<StepOutcome> {
  const { objectTable, sourceUris, connection, dataset } = ctx.spec;
  const table = ctx.dataset.table(objectTable);
  const action = await ctx.call(`object table ${objectTable}`, async (): Promise<StepOutcome['action']> => {
    const [exists] = await table.exists();
    if (exists) {
      const [metadata] = await table.getMetadata();
      const external = metadata.externalDataConfiguration ?? {};
      const sameUris = JSON.stringify(external.sourceUris ?? []) === JSON.stringify(sourceUris);
      const sameConnection = String(external.connectionId ?? '').endsWith(`.${connection}`);
      const cached = external.metadataCacheMode === 'MANUAL';
      if (sameUris && sameConnection && cached) return 'exists';
    }
    const sql = createObjectTableSql(ctx.spec);
    await ctx.statement(`object table ${objectTable}`, ctx.statementJobId('object_table', sql), sql);
    if (!exists) await ctx.record('table', objectTable);
    return exists ? 'updated' : 'created';
  });
  const refresh = refreshObjectTableSql(ctx.spec);
  await ctx.statement(`list the objects of ${objectTable} through the connection`, ctx.statementJobId('refresh', refresh), refresh);
  return { step: 'object table', action, detail: `${dataset}.${objectTable} over ${sourceUris.join(', ')} (listing refreshed)` };
}
