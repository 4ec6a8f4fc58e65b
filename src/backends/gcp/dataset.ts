/** The dataset: created in the configured location, or found there (elsewhere is an error naming it). */
import { ErrorType, ObjinferError } from '../../errors';
import type { StepOutcome } from '../../workflows/contract';
import type { GcpContext } from './context';

export async function ensureDataset(ctx: GcpContext): Promise<StepOutcome> {
  const { dataset, location, project } = ctx.spec;
  return ctx.call(`dataset ${dataset}`, async () => {
    const [exists] = await ctx.dataset.exists();
    if (exists) {
      const [metadata] = await ctx.dataset.getMetadata();
      const actual = String(metadata.location ?? '');
      if (actual.toLowerCase() !== location.toLowerCase()) {
        throw new ObjinferError(
          ErrorType.ResourceConflict,
          `dataset ${dataset} exists in location ${actual}, not ${location}; set location: ${actual} or choose another dataset`,
        );
      }
      return { step: 'dataset', action: 'exists', detail: `${project}.${dataset} (${actual})` };
    }
    await ctx.clients.bigquery.createDataset(dataset, { location });
    await ctx.record('dataset', dataset);
    return { step: 'dataset', action: 'created', detail: `${project}.${dataset} (${location})` };
  });
}
