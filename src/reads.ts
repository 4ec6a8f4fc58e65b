/** The predictions and errors a pipeline wrote, through the read port (no Temporal, no provisioning). */
import type { ErrorRow, ResultFilter, ResultRow } from './backends/port';
import { openResults } from './backends/results';
import type { RunSpec } from './config';

export async function readResults(spec: RunSpec, filter: ResultFilter = {}): Promise<ResultRow[]> {
  return (await openResults(spec)).readResults(filter);
}

export async function readErrors(spec: RunSpec, filter: ResultFilter = {}): Promise<ErrorRow[]> {
  return (await openResults(spec)).readErrors(filter);
}
