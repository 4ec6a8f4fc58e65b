/** The results, errors and labels tables: created once, clustered on the key; fields added since are added. */
import type { TableField } from '@google-cloud/bigquery';
import type { ModelDescription, StepOutcome } from '../../workflows/contract';
import type { GcpContext } from './context';
import { readLabelsSource } from './model';
import { loadLabelsSql } from './sql';

/** The key every results and errors row has: (uri, generation, model_version). */
const KEY_FIELDS: TableField[] = [
  { name: 'uri', type: 'STRING', mode: 'REQUIRED' },
  { name: 'generation', type: 'INTEGER', mode: 'REQUIRED' },
  { name: 'model_version', type: 'STRING', mode: 'REQUIRED' },
];

export const RESULTS_SCHEMA: TableField[] = [
  ...KEY_FIELDS,
  { name: 'label', type: 'STRING' },
  { name: 'score', type: 'FLOAT' },
  {
    name: 'top_k',
    type: 'RECORD',
    mode: 'REPEATED',
    fields: [
      { name: 'label', type: 'STRING' },
      { name: 'index', type: 'INTEGER' },
      { name: 'score', type: 'FLOAT' },
    ],
  },
  { name: 'probabilities', type: 'FLOAT', mode: 'REPEATED' },
  { name: 'run_id', type: 'STRING', mode: 'REQUIRED' },
  { name: 'predicted_at', type: 'TIMESTAMP', mode: 'REQUIRED' },
];

export const ERRORS_SCHEMA: TableField[] = [
  ...KEY_FIELDS,
  { name: 'error', type: 'STRING', mode: 'REQUIRED' },
  { name: 'run_id', type: 'STRING', mode: 'REQUIRED' },
  { name: 'failed_at', type: 'TIMESTAMP', mode: 'REQUIRED' },
  { name: 'kind', type: 'STRING' },
];

const LABELS_SCHEMA: TableField[] = [
  { name: 'model_version', type: 'STRING', mode: 'REQUIRED' },
  { name: 'index', type: 'INTEGER', mode: 'REQUIRED' },
  { name: 'label', type: 'STRING', mode: 'REQUIRED' },
];

/** Results and errors are clustered on the key: per-run guards and reads touch only their version's blocks. */
const CLUSTERING = { fields: ['model_version', 'uri'] };

export async function ensureResultTables(ctx: GcpContext, model: ModelDescription): Promise<StepOutcome[]> {
  const { results, dataset } = ctx.spec;
  const outcomes: StepOutcome[] = [];
  for (const [name, schema, clustered] of [
    [results.table, RESULTS_SCHEMA, true],
    [results.errorsTable, ERRORS_SCHEMA, true],
    [results.labelsTable, LABELS_SCHEMA, false],
  ] as const) {
    outcomes.push(
      await ctx.call(`table ${name}`, async (): Promise<StepOutcome> => {
        const table = ctx.dataset.table(name);
        const [exists] = await table.exists();
        if (exists) {
          await addMissingFields(table, schema);
          return { step: 'table', action: 'exists', detail: `${dataset}.${name}` };
        }
        await ctx.dataset.createTable(name, { schema: [...schema], ...(clustered ? { clustering: CLUSTERING } : {}) });
        await ctx.record('table', name);
        return { step: 'table', action: 'created', detail: `${dataset}.${name}` };
      }),
    );
  }
  await loadLabels(ctx, model.version);
  return outcomes;
}

/** Tables made by an earlier objinfer may lack a field added since (errors.kind): add it. */
async function addMissingFields(table: ReturnType<GcpContext['dataset']['table']>, schema: readonly TableField[]): Promise<void> {
  const [metadata] = await table.getMetadata();
  const fields: TableField[] = metadata.schema?.fields ?? [];
  const missing = schema.filter((f) => !fields.some((existing) => existing.name === f.name));
  if (missing.length > 0) await table.setMetadata({ schema: { fields: [...fields, ...missing] } });
}

/** The labels table holds each version's labels once (one atomic statement); batches read them from there. */
async function loadLabels(ctx: GcpContext, version: string): Promise<void> {
  const labels = await readLabelsSource(ctx);
  if (!labels?.length) return;
  const sql = loadLabelsSql(ctx.spec);
  await ctx.statement('load labels', ctx.statementJobId('labels', sql), sql, { model_version: version, labels });
}
