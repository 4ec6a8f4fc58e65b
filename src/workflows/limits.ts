/**
 * Limits that keep a run inside Temporal's: pending activities, history and payload sizes.
 * Pure functions, shared by the workflow and its tests.
 */
import type { BatchPlan } from './contract';

/** Batches at once: the bound of batch.concurrency in the config, and of a running pipeline's `objinfer set`. */
export const MAX_CONCURRENCY = 64;

/**
 * At most this many batches per run. Only `batch.concurrency` (at most 64) are ever
 * pending at once, far below Temporal's 2,000 pending activities; the cap keeps a tiny
 * batch size over millions of objects from turning into millions of activities.
 */
export const MAX_BATCHES = 10_000;

/** Fewer, larger batches when the configured size would make more than MAX_BATCHES. */
export function capBatches(plan: BatchPlan, warnings: string[]): BatchPlan {
  if (plan.batchCount <= MAX_BATCHES) return plan;
  warnings.push(
    `batch.size would make ${plan.batchCount} batches for ${plan.pending} images; capped at ${MAX_BATCHES} batches ` +
      `of about ${Math.ceil(plan.pending / MAX_BATCHES)} images each (raise batch.size to choose the size yourself)`,
  );
  return { ...plan, batchCount: MAX_BATCHES };
}

/** Halvings a batch may go through while isolating an object that kills its worker (2^24 objects). */
export const MAX_SPLIT_DEPTH = 24;

/** Labels counted in the summary; the rest are summed under OTHER_LABELS so the summary stays small. */
export const MAX_LABEL_COUNTS = 1000;
export const OTHER_LABELS = '(other labels)';

export function addLabelCounts(total: Record<string, number>, batch: Record<string, number>): void {
  for (const [label, n] of Object.entries(batch)) {
    const key = label in total || Object.keys(total).length < MAX_LABEL_COUNTS ? label : OTHER_LABELS;
    total[key] = (total[key] ?? 0) + n;
  }
}
