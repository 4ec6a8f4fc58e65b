/**
 * Capacity: the QUERY assignment the project's queries run on (its own or inherited), checked
 * before anything is created, and (when configured) the reservation objinfer makes and
 * assigns. Imported models over object tables run only on reservations.
 */
import { ErrorType, ObjinferError } from '../../errors';
import type { StepOutcome } from '../../workflows/contract';
import type { GcpContext } from './context';
import { describeGoogleError, isNotFound } from './errors';

interface Assignment {
  name: string;
  reservation: string;
  assignee: string;
  state: string;
}

/**
 * QUERY assignments that apply to the project in the location. searchAllAssignments returns
 * the project's own when it has any, else the closest ancestor's (a folder's or the
 * organisation's): either is what the project's queries run on.
 */
async function searchQueryAssignments(ctx: GcpContext): Promise<Assignment[]> {
  const { project, location } = ctx.spec;
  const [found] = await ctx.call('look for a reservation assignment', () =>
    ctx.clients.reservations.searchAllAssignments(
      { parent: `projects/${project}/locations/${location}`, query: `assignee=projects/${project}` },
      { autoPaginate: false },
    ),
  );
  return found
    .filter((a) => String(a.jobType) === 'QUERY')
    .map((a) => ({
      name: String(a.name),
      reservation: String(a.name).replace(/\/assignments\/[^/]+$/, ''),
      assignee: String(a.assignee),
      state: String(a.state ?? ''),
    }));
}

/** The project's own QUERY assignments in the location (there can be one per project and location). */
export async function queryAssignments(ctx: GcpContext): Promise<Assignment[]> {
  return (await searchQueryAssignments(ctx)).filter((a) => a.assignee === `projects/${ctx.spec.project}`);
}

/** The assignment the project's queries run on: its own, else an ancestor's. */
async function effectiveAssignment(ctx: GcpContext): Promise<Assignment | undefined> {
  const all = await searchQueryAssignments(ctx);
  return all.find((a) => a.assignee === `projects/${ctx.spec.project}`) ?? all[0];
}

const USABLE_EDITIONS = ['ENTERPRISE', 'ENTERPRISE_PLUS'];

/**
 * Google: imported models over object tables run only with capacity-based pricing. So the
 * assignment the project's queries get (inherited ones included) must be ACTIVE, to a
 * reservation (not `none`, which means on-demand) of the Enterprise or Enterprise Plus
 * edition with slots (a baseline or an autoscale maximum). Anything else fails before
 * anything is created. Warnings: what could not be checked.
 */
export async function checkCapacity(ctx: GcpContext): Promise<string[]> {
  const { project, location } = ctx.spec;
  const howTo =
    'set "reservation: { name: objinfer, slots: 50 }" in the config for objinfer to create one (Enterprise, billed per slot-hour while it exists), ' +
    `or ask an admin for a QUERY assignment of projects/${project} to an Enterprise reservation in ${location}`;
  const assignment = await effectiveAssignment(ctx);
  if (!assignment) {
    throw new ObjinferError(
      ErrorType.InvalidConfig,
      `reservation: project ${project} has no QUERY reservation assignment in ${location}, so its queries run on-demand, where BigQuery refuses ML.PREDICT of imported models over object tables; ${howTo}. Nothing was created`,
    );
  }
  const through = assignment.assignee === `projects/${project}` ? "the project's assignment" : `the assignment inherited from ${assignment.assignee}`;
  if (assignment.reservation.endsWith('/reservations/none')) {
    throw new ObjinferError(
      ErrorType.InvalidConfig,
      `reservation: ${through} (${assignment.name}) is to "none": the project runs on-demand, where BigQuery refuses ML.PREDICT of imported models over object tables; ${howTo}. Nothing was created`,
    );
  }
  if (assignment.state && assignment.state !== 'ACTIVE') {
    throw new ObjinferError(
      ErrorType.Refused,
      `reservation: ${through} (${assignment.name}) is ${assignment.state}: until it is ACTIVE BigQuery runs the project on-demand, where object-table inference is refused; run again in a few minutes. Nothing was created`,
    );
  }
  let reservation;
  try {
    [reservation] = await ctx.clients.reservations.getReservation({ name: assignment.reservation });
  } catch (error) {
    return [`could not read reservation ${assignment.reservation} (${through}), so its edition and slots are unchecked: ${describeGoogleError(error).message}`];
  }
  const edition = String(reservation.edition ?? 'EDITION_UNSPECIFIED');
  if (!USABLE_EDITIONS.includes(edition)) {
    throw new ObjinferError(
      ErrorType.InvalidConfig,
      `reservation: ${assignment.reservation} (${through}) is of the ${edition} edition; imported models over object tables need Enterprise or Enterprise Plus: ${howTo}. Nothing was created`,
    );
  }
  const slots = Number(reservation.slotCapacity ?? 0) + Number(reservation.autoscale?.maxSlots ?? 0);
  if (!(slots > 0)) {
    throw new ObjinferError(
      ErrorType.InvalidConfig,
      `reservation: ${assignment.reservation} (${through}) has no slots (baseline 0, no autoscaling): give it slots, or ${howTo}. Nothing was created`,
    );
  }
  return [];
}

/** An inherited assignment a configured reservation would override for this project. */
async function inheritedAssignment(ctx: GcpContext): Promise<Assignment | undefined> {
  const effective = await effectiveAssignment(ctx);
  return effective && effective.assignee !== `projects/${ctx.spec.project}` ? effective : undefined;
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
  const inherited = await inheritedAssignment(ctx);
  if (inherited) {
    // Assigning the project to another reservation would override the organisation's choice (and add a bill).
    return [
      {
        step: 'reservation',
        action: 'skipped',
        detail: `${wanted.name}: the project already runs on ${inherited.reservation} through ${inherited.assignee}'s assignment`,
        warnings: [
          `reservation ${wanted.name} was not created: projects/${project} already gets capacity from ${inherited.reservation}, assigned to ${inherited.assignee}; remove "reservation" from the config (or ask an admin whether the project should have its own)`,
        ],
      },
    ];
  }
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
