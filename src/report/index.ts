/**
 * `objinfer report`: a pipeline's results (or one run's) as one HTML file to open in a
 * browser: counts, charts, a gallery of thumbnails with their top-k, and the errors.
 */
import { writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { writeAtomically } from '../outputFiles';
import { openResults } from '../backends/results';
import type { ErrorRow, ResultRow, ResultsPort } from '../backends/port';
import type { RunSpec } from '../config';
import { evaluate, truthLookup } from '../evaluation';
import { topConfusion } from '../evaluation/metrics';
import { reportHtml, type ReportData, type ReportEvaluation } from './html';
import { Thumbnailer } from './thumbnails';
import { changesBetween } from './changes';

export { reportHtml, type ReportData } from './html';

/** A name people can read: the path of a file:// URI, else the URI; bytes that are not UTF-8 stay escaped. */
export function displayName(uri: string): string {
  const raw = uri.startsWith('file://') ? uri.slice('file://'.length) : uri;
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

export interface ReportOptions {
  runId?: string;
  /** Every generation's rows, not only each image as it is now (see ResultFilter.history). */
  history?: boolean;
  out: string;
  /** Thumbnails for at most this many images (least confident first); the rest show a placeholder. */
  maxThumbnails?: number;
  /** The two prediction versions whose changed images the report shows; the two newest when absent. */
  compare?: [string, string];
  onProgress?: (done: number, total: number) => void;
}

async function mapLimited<T, R>(items: T[], limit: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await work(items[i]!, i);
      }
    }),
  );
  return out;
}

/** Thumbnails made for changed images beyond the least confident ones: the first pages of the "changed" gallery. */
const CHANGED_THUMBNAILS = 500;

/** `from`: where results are read (the backend's own reader unless given, e.g. a test's endpoints). */
export async function buildReport(spec: RunSpec, options: Omit<ReportOptions, 'out'>, given?: ResultsPort): Promise<ReportData> {
  const from = given ?? (await openResults(spec));
  const filter = { runId: options.runId, history: options.history };
  const results: ResultRow[] = (await from.readResults(filter)).sort((a, b) => a.score - b.score || a.uri.localeCompare(b.uri));
  const errors: ErrorRow[] = await from.readErrors(filter);
  const local = spec.backend === 'local';
  const budget = options.maxThumbnails ?? 2_000; // ~4 KB each: the least confident 2,000 keep a large report near 8 MB
  // Local files are read where they are; other objects through the reader (Cloud Storage on gcp).
  const readObject = from.readObject?.bind(from);
  const thumbnailer = local || readObject ? new Thumbnailer(readObject) : undefined;
  const changes = changesBetween(results, options.compare);
  // The changed images are shown in pairs: they get a thumbnail even when they were confident.
  const alsoThumbnailed = new Set((changes?.changed ?? []).slice(0, CHANGED_THUMBNAILS).flat());
  const wanted = (index: number) => index < budget || alsoThumbnailed.has(index);
  let done = 0;
  const total = results.filter((_, i) => wanted(i)).length + errors.length;
  const thumb = async (uri: string, index: number) => {
    const t = thumbnailer && wanted(index) ? await thumbnailer.thumbnail(uri) : undefined;
    options.onProgress?.(++done, total);
    return t;
  };
  const evaluation = spec.evaluation ? await reportEvaluation(spec, from) : undefined;
  const truthOf = await truthLookup(spec, from);
  try {
    const cardThumbs = await mapLimited(results, 4, (r, i) => thumb(r.uri, i));
    const errorThumbs = await mapLimited(errors, 4, (e) => thumb(e.uri, -1));
    return {
      pipeline: spec.name,
      backend: spec.backend,
      modelVersions: [...new Set([...results.map((r) => r.modelVersion), ...errors.map((e) => e.modelVersion)])],
      runs: [...new Set([...results.map((r) => r.runId), ...errors.map((e) => e.runId)])],
      generatedAt: new Date().toISOString(),
      thumbnailNote: thumbnailer
        ? `thumbnails made from the images${local ? '' : ', read from Cloud Storage'} (${Math.min(budget, results.length)} of ${results.length})`
        : 'no thumbnails: open an object from its URI',
      cards: results.map((r, i) => ({
        uri: r.uri,
        name: basename(displayName(r.uri)),
        path: displayName(r.uri),
        label: r.label,
        score: r.score,
        version: r.modelVersion,
        topK: r.topK.map((t) => ({ label: t.label, score: t.score })),
        runId: r.runId,
        thumbnail: cardThumbs[i],
        ...(truthOf?.(r.uri) !== undefined ? { truth: truthOf(r.uri) } : {}),
      })),
      ...(changes ? { changes } : {}),
      errors: errors.map((e, i) => ({ uri: e.uri, name: displayName(e.uri), error: e.error, kind: e.kind, thumbnail: errorThumbs[i] })),
      ...(evaluation ? { evaluation } : {}),
    };
  } finally {
    thumbnailer?.close();
  }
}

/** The newest version's evaluation, cut to what a page shows: the 30 classes and 12 matrix rows with the most support. */
async function reportEvaluation(spec: RunSpec, from: ResultsPort): Promise<ReportEvaluation> {
  const e = await evaluate(spec, {}, from);
  return {
    modelVersion: e.modelVersion,
    groundTruth: e.groundTruth,
    images: e.images,
    evaluated: e.evaluated,
    withoutGroundTruth: e.withoutGroundTruth,
    withoutPrediction: e.withoutPrediction,
    accuracy: e.accuracy,
    topK: e.topK,
    macro: e.macro,
    weighted: e.weighted,
    classes: [...e.classes].sort((a, b) => b.support - a.support || (a.label < b.label ? -1 : 1)).slice(0, 30),
    confusion: topConfusion(e.confusion, 12),
  };
}

export async function writeReport(spec: RunSpec, options: ReportOptions): Promise<ReportData> {
  const data = await buildReport(spec, options);
  await writeAtomically(options.out, (file) => writeFile(file, reportHtml(data)));
  return data;
}
