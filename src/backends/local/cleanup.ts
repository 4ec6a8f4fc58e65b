/**
 * The procedure's last section, locally: removes what objinfer created for the pipeline.
 * Results and errors, the dataset, the connection and the bucket only with `deleteData`.
 */
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { StepOutcome } from '../../workflows/contract';
import { OBJECT_VIEWER } from '../common/iam';
import type { LocalContext } from './context';
import { quote } from './warehouse';

export async function cleanup(ctx: LocalContext, options: { deleteData: boolean }): Promise<StepOutcome[]> {
  const { dataset, objectTable, model, results } = ctx.spec;
  const outcomes: StepOutcome[] = [];
  const note = (step: string, removed: boolean, name: string) =>
    outcomes.push({ step, action: removed ? 'removed' : 'skipped', detail: removed ? `removed ${name}` : `${name} was already gone` });
  await ctx.transaction(async (db) => {
    const modelRow = await db.one('SELECT 1 FROM _objinfer.models WHERE dataset = $1 AND name = $2', [dataset, model.name]);
    await db.run('DELETE FROM _objinfer.models WHERE dataset = $1 AND name = $2', [dataset, model.name]);
    note('model', !!modelRow, `${dataset}.${model.name}`);
    const dataTables = [results.table, results.errorsTable];
    for (const table of [results.labelsTable, objectTable, ...dataTables]) {
      if (dataTables.includes(table) && !options.deleteData) {
        outcomes.push({ step: 'table', action: 'skipped', detail: `kept ${dataset}.${table} (data: pass --yes to delete it)` });
        continue;
      }
      const existed = await db.tableExists(dataset, table);
      await db.run(`DROP TABLE IF EXISTS ${ctx.table(table)}`);
      note('table', existed, `${dataset}.${table}`);
    }
    const member = `serviceAccount:${ctx.serviceAccount}`;
    const grants = await db.all<{ bucket: string }>('SELECT bucket FROM _objinfer.grants WHERE member = $1', [member]);
    await db.run('DELETE FROM _objinfer.grants WHERE member = $1', [member]);
    for (const grant of grants) note('grant', true, `${OBJECT_VIEWER} for ${member} on ${grant.bucket}`);
  });
  const modelFolder = join(ctx.bucketPath, 'models', model.name);
  const hadFiles = await stat(modelFolder).then(
    () => true,
    () => false,
  );
  await rm(modelFolder, { recursive: true, force: true });
  note('model files', hadFiles, modelFolder);
  if (!options.deleteData) {
    outcomes.push({ step: 'dataset', action: 'skipped', detail: `kept ${dataset}, the connection and the bucket (pass --yes to delete them)` });
    return outcomes;
  }
  await ctx.transaction(async (db) => {
    const ours = await db.one('SELECT 1 FROM _objinfer.buckets WHERE path = $1', [ctx.bucketPath]);
    if (ours) {
      await rm(ctx.bucketPath, { recursive: true, force: true });
      await db.run('DELETE FROM _objinfer.buckets WHERE path = $1', [ctx.bucketPath]);
    }
    note('bucket', !!ours, ctx.bucketPath);
    const { project, location, connection } = ctx.spec;
    const connectionRow = await db.one('SELECT 1 FROM _objinfer.connections WHERE project = $1 AND location = $2 AND name = $3', [
      project,
      location,
      connection,
    ]);
    await db.run('DELETE FROM _objinfer.connections WHERE project = $1 AND location = $2 AND name = $3', [project, location, connection]);
    note('connection', !!connectionRow, connection);
    const datasetRow = await db.one('SELECT 1 FROM _objinfer.datasets WHERE name = $1', [dataset]);
    if (datasetRow) {
      await db.run(`DROP SCHEMA IF EXISTS ${quote(dataset)} CASCADE`);
      await db.run('DELETE FROM _objinfer.datasets WHERE name = $1', [dataset]);
    }
    note('dataset', !!datasetRow, dataset);
  });
  return outcomes;
}
