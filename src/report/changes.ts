/**
 * The report's "what changed" gallery: the images whose top-1 label differs between two
 * prediction versions (by default the two newest), each shown with both versions' top-k.
 */
import type { ResultRow } from '../backends/port';

export interface ReportChanges {
  /** [older, newer], or as asked. */
  versions: [string, string];
  /** Images with a prediction of both versions. */
  both: number;
  /** Indexes into the report's cards: [the first version's card, the second's], by name. */
  changed: [number, number][];
}

/** The versions in the order of their newest prediction, oldest first. */
function versionsByRecency(results: ResultRow[]): string[] {
  const newest = new Map<string, string>();
  for (const r of results) if ((newest.get(r.modelVersion) ?? '') < r.predictedAt) newest.set(r.modelVersion, r.predictedAt);
  return [...newest].sort((a, b) => (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0)).map(([version]) => version);
}

/**
 * `results` are the report's cards in order; an image is its (uri, generation), so a replaced
 * image's old prediction is never paired with its new one. Undefined with fewer than two versions.
 */
export function changesBetween(results: ResultRow[], asked?: [string, string]): ReportChanges | undefined {
  const recent = versionsByRecency(results);
  const versions = asked ?? (recent.length >= 2 ? (recent.slice(-2) as [string, string]) : undefined);
  if (!versions) return undefined;
  const key = (r: ResultRow) => `${r.generation}\u0000${r.uri}`;
  const first = new Map<string, number>();
  results.forEach((r, i) => {
    if (r.modelVersion === versions[0]) first.set(key(r), i);
  });
  let both = 0;
  const changed: [number, number][] = [];
  results.forEach((r, i) => {
    const a = r.modelVersion === versions[1] ? first.get(key(r)) : undefined;
    if (a === undefined) return;
    both++;
    if (results[a]!.label !== r.label) changed.push([a, i]);
  });
  changed.sort(([a], [b]) => (results[a]!.uri < results[b]!.uri ? -1 : results[a]!.uri > results[b]!.uri ? 1 : 0));
  return { versions, both, changed };
}
