/**
 * `objinfer export --format fiftyone`: a folder in FiftyOne's image-classification format
 * (FiftyOneImageClassificationDataset) with a data manifest instead of copies of the images:
 *   data.json          { key: the image's path (a local file) or its gs:// URI }
 *   labels.json        { labels: { key: { label, confidence, attributes } } }: the predictions
 *   ground_truth.json  { labels: { key: label } }: where the config's ground truth gives one
 * One sample per image: its newest prediction version's row (older versions are left out).
 */
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ResultRow } from './backends/port';
import { EXPORT_MARK } from './outputFiles';

export interface FiftyOneExport {
  /** The prediction version the labels are of. */
  modelVersion: string | null;
  samples: number;
  withGroundTruth: number;
}

/** A stable key per image (URI and generation), so a second export of the same images names them alike. */
const keyOf = (r: ResultRow) => `img-${createHash('sha256').update(`${r.uri}\u0000${r.generation}`).digest('hex').slice(0, 20)}`;

const pathOf = (uri: string) => (uri.startsWith('file://') ? fileURLToPath(uri) : uri);

/** `rows` newest first (as the read port gives them). */
export async function writeFiftyOne(folder: string, rows: ResultRow[], truthOf?: (uri: string) => string | undefined): Promise<FiftyOneExport> {
  const modelVersion = rows[0]?.modelVersion ?? null;
  const data: Record<string, string> = {};
  const labels: Record<string, object> = {};
  const truth: Record<string, string> = {};
  for (const r of rows) {
    if (r.modelVersion !== modelVersion) continue;
    const key = keyOf(r);
    if (key in data) continue;
    data[key] = pathOf(r.uri);
    labels[key] = { label: r.label, confidence: r.score, attributes: { model_version: r.modelVersion, run_id: r.runId } };
    const expected = truthOf?.(r.uri);
    if (expected !== undefined) truth[key] = expected;
  }
  const json = (value: unknown) => `${JSON.stringify(value, null, 1)}\n`;
  await writeFile(join(folder, EXPORT_MARK), json(data));
  await writeFile(join(folder, 'labels.json'), json({ labels }));
  if (truthOf) await writeFile(join(folder, 'ground_truth.json'), json({ labels: truth }));
  return { modelVersion, samples: Object.keys(data).length, withGroundTruth: Object.keys(truth).length };
}
