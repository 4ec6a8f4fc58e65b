/** What a local run would do, step by step, for `objinfer plan`. */
import type { PlannedCall } from '../port';
import { OBJECT_VIEWER } from '../common/iam';
import type { LocalContext } from './context';

export async function describePlan(ctx: LocalContext): Promise<PlannedCall[]> {
  const { dataset, objectTable, model, results, local, batch, connection, sourceUris } = ctx.spec;
  return [
    { step: 'preflight', call: `check that ${ctx.imageBuckets.join(', ')} and ${model.source} exist` },
    { step: 'dataset', call: `CREATE SCHEMA IF NOT EXISTS ${dataset} in ${local.warehouse}` },
    { step: 'connection', call: `record connection ${connection} (service account ${ctx.serviceAccount})` },
    { step: 'bucket', call: `mkdir ${ctx.bucketPath}` },
    { step: 'grant', call: `record ${OBJECT_VIEWER} for the connection on ${[ctx.bucketUri, ...ctx.imageBuckets].join(', ')}` },
    { step: 'upload model', call: `copy ${model.source} to ${ctx.bucketPath}/models/${model.name}/VERSION/ (unless identical)` },
    { step: 'object table', call: `list ${sourceUris.join(', ')} into ${dataset}.${objectTable}` },
    { step: 'model', call: `record model ${dataset}.${model.name} (ONNX)` },
    { step: 'describe model', call: 'read input/output names and input shape from the ONNX file' },
    { step: 'tables', call: `CREATE TABLE IF NOT EXISTS ${dataset}.${results.table}, ${dataset}.${results.errorsTable}, ${dataset}.${results.labelsTable}` },
    { step: 'plan', call: `count objects without a row for this prediction version; k = ceil(pending / ${batch.size}) batches by md5_number(uri) % k` },
    {
      step: 'infer',
      call: `per batch: decode and resize in decoder processes, ONNX Runtime, INSERT into ${dataset}.${results.table} (rows not already there)`,
    },
  ];
}
