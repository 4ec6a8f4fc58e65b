/** What a schedule does when a run is still going at its next slot: apart from the schedules, so the CLI can offer the choices without loading Temporal's client. */
import type { ScheduleOverlapPolicy } from '@temporalio/client';

export const OVERLAP_POLICIES = { skip: 'SKIP', 'buffer-one': 'BUFFER_ONE', 'allow-all': 'ALLOW_ALL' } as const satisfies Record<string, ScheduleOverlapPolicy>;
export type OverlapName = keyof typeof OVERLAP_POLICIES;
