/**
 * Capacity: the project's QUERY assignment, and (when configured) the reservation objinfer
 * makes and assigns. Imported models over object tables run only on reservations.
 */
import { ErrorType, ObjinferError } from '../../errors';
import type { StepOutcome } from '../../workflows/contract';
import type { GcpContext } from './context';
import { isNotFound } from './errors';

/** The project's QUERY assignments in the location (there can be one per project and location). */
export async function queryAssignments(ctx: GcpContext): Promise<{ name: string; reservation: string }[]> {
  const { project, location } = ctx.spec;
  const [found] = await ctx.call('look for a reservation assignment', () =>
    ctx.clients.reservations.searchAllAssignments(
      { parent: `projects/${project}/locations/${location}`, query: `assignee=projects/${project}` },
      { autoPaginate: false },
    ),
  );
  return found
    .filter((a) => String(a.jobType) === 'QUERY' && a.assignee === `projects/${project}`)
    .map((a) => ({ name: String(a.name), reservation: String(a.name).replace(/\/assignments\/[^/]+$/, '') }));
}

/** When configured: an Enterprise reservation and the project's QUERY assignment to it. */
export async function ensureReservation(ctx: GcpContext): Promise<StepOutcome[]> {
  const wanted = ctx.spec.reservation;
  if (!wanted) return [];
  const { project, location } = ctx.spec;
  const { reservations } = ctx.clients;
  const parent = `projects/${project}/locations/${location}`;
  const name = `${parent}/reservations/${wanted.name}`;
  const outcomes: StepOutcome[] = [];
  await ctx.call(`reservation ${wanted.name}`, async () => {
    try {
      await reservations.getReservation({ name });
      outcomes.push({ step: 'reservation', action: 'exists', detail: name });
    } catch (error) {
      if (!isNotFound(error)) throw error;
      await reservations.createReservation({
        parent,
        reservationId: wanted.name,
        reservation: { slotCapacity: wanted.slots, edition: wanted.edition, ignoreIdleSlots: false },
      });
      await ctx.record('reservation', name);
      outcomes.push({ step: 'reservation', action: 'created', detail: `${name} (${wanted.edition}, ${wanted.slots} slots)` });
    }
  });
  const assignee = `projects/${project}`;
  const existing = await queryAssignments(ctx);
  const ours = existing.find((a) => a.reservation === name);
  if (ours) {
    outcomes.push({ step: 'assignment', action: 'exists', detail: `${assignee} QUERY -> ${wanted.name}` });
    return outcomes;
  }
  if (existing.length > 0) {
    throw new ObjinferError(
      ErrorType.ResourceConflict,
      `project ${project} already has a QUERY assignment in ${location}, to ${existing[0]!.reservation}; a project may have one. ` +
        `Use that reservation (set reservation.name to ${existing[0]!.reservation.split('/').pop()}) or remove "reservation" from the config`,
    );
  }
  await ctx.call(`assignment of ${assignee} to ${wanted.name}`, async () => {
    const [assignment] = await reservations.createAssignment({ parent: name, assignment: { assignee, jobType: 'QUERY' } });
    await ctx.record('assignment', String(assignment.name));
  });
  outcomes.push({ step: 'assignment', action: 'created', detail: `${assignee} QUERY -> ${wanted.name}` });
  return outcomes;
}
