/** The caps that keep any config inside Temporal's limits (pending activities, payload sizes). */
import { addLabelCounts, capBatches, MAX_BATCHES, MAX_LABEL_COUNTS, OTHER_LABELS } from '../src/workflows/limits';

const plan = (pending: number, size: number) => ({
  modelVersion: 'v',
  objectsSeen: pending,
  alreadyDone: 0,
  failedBefore: 0,
  pending,
  batchCount: Math.ceil(pending / size),
});

test('a plan within the cap is left as it is, with no warning', () => {
  const warnings: string[] = [];
  expect(capBatches(plan(1_000_000, 100), warnings)).toEqual(plan(1_000_000, 100));
  expect(warnings).toEqual([]);
});

test('batch.size 1 over 3 million objects becomes 10 000 larger batches, and the summary says so', () => {
  const warnings: string[] = [];
  expect(capBatches(plan(3_000_000, 1), warnings)).toMatchObject({ batchCount: MAX_BATCHES, pending: 3_000_000 });
  expect(warnings).toEqual([
    'batch.size would make 3000000 batches for 3000000 images; capped at 10000 batches of about 300 images each (raise batch.size to choose the size yourself)',
  ]);
});

test('label counts stop growing at 1 000 labels; the rest are summed under one key', () => {
  const total: Record<string, number> = {};
  for (let i = 0; i < 3000; i++) addLabelCounts(total, { [`label_${i}`]: 2 });
  addLabelCounts(total, { label_0: 5 });
  expect(Object.keys(total)).toHaveLength(MAX_LABEL_COUNTS + 1);
  expect(total.label_0).toBe(7); // a label already counted keeps its own count
  expect(total[OTHER_LABELS]).toBe(2 * (3000 - MAX_LABEL_COUNTS));
  expect(Object.values(total).reduce((a, b) => a + b, 0)).toBe(3000 * 2 + 5);
});
