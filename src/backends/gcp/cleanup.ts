/**
 * The procedure's last section on Google Cloud: removes what `_objinfer_created` says
 * objinfer made for this pipeline, in dependency order, and nothing else. Results and
 * errors, the dataset, the connection, the bucket and the reservation go only with
 * `deleteData`; a reservation's assignment goes before the reservation (the API refuses
 * to delete a reservation that still has one).
 */
import type { StepOutcome } from '../../workflows/contract';
import { CREATED_TABLE, type CreatedKind, type GcpContext } from './context';
import { isNotFound } from './errors';
import { changeBinding } from './bucket';

export async function cleanup(ctx: GcpContext, options: { deleteData: boolean }): Promise<StepOutcome[]> {
  const created = await ctx.call('read what objinfer created', () => ctx.created());
  const mine = (kind: CreatedKind) => created.filter((c) => c.kind === kind).map((c) => c.name);
  const outcomes: StepOutcome[] = [];
  const remove = async (step: string, name: string, work: () => Promise<unknown>) => {
    await ctx.call(`remove ${step} ${name}`, async () => {
      try {
        await work();
        outcomes.push({ step, action: 'removed', detail: `removed ${name}` });
      } catch (error) {
        if (!isNotFound(error)) throw error;
        outcomes.push({ step, action: 'skipped', detail: `${name} was already gone` });
      }
    });
  };
  const gone = () => Object.assign(new Error('gone'), { code: 404 });
  const { results } = ctx.spec;
  const dataTables = new Set([results.table, results.errorsTable]);
  for (const name of mine('model')) await remove('model', name, () => ctx.dataset.model(name).delete());
  for (const name of mine('table')) {
    if (dataTables.has(name) && !options.deleteData) {
      outcomes.push({ step: 'table', action: 'skipped', detail: `kept ${name} (data: pass --yes to delete it)` });
      continue;
    }
    await remove('table', name, () => ctx.dataset.table(name).delete());
  }
  for (const grant of mine('grant')) {
    const [bucket, member] = grant.split(' ');
    await remove('grant', grant, async () => {
      if (!(await changeBinding(ctx, bucket!, member!, 'remove'))) throw gone();
    });
  }
  for (const object of mine('object')) {
    const [bucket, ...path] = object.split('/');
    await remove('model file', `gs://${object}`, () => ctx.clients.storage.bucket(bucket!).file(path.join('/')).delete());
  }
  if (options.deleteData) {
    for (const name of mine('bucket')) await remove('bucket', name, () => ctx.clients.storage.bucket(name).delete());
    for (const name of mine('connection')) await remove('connection', name, () => ctx.clients.connections.deleteConnection({ name }));
    for (const name of mine('assignment')) await remove('assignment', name, () => ctx.clients.reservations.deleteAssignment({ name }));
    for (const name of mine('reservation')) await remove('reservation', name, () => ctx.clients.reservations.deleteReservation({ name }));
    for (const name of mine('dataset')) await remove('dataset', name, () => ctx.dataset.delete({ force: true }));
  } else {
    for (const kind of ['bucket', 'connection', 'reservation', 'dataset'] as const) {
      for (const name of mine(kind)) outcomes.push({ step: kind, action: 'skipped', detail: `kept ${name} (pass --yes to delete it)` });
    }
  }
  // The record goes last, and only when nothing it lists is left to remove later.
  if (options.deleteData && mine('dataset').length === 0) {
    await remove('table', CREATED_TABLE, () => ctx.dataset.table(CREATED_TABLE).delete());
  }
  return outcomes;
}
