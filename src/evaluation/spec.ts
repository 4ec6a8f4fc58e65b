/**
 * Where the true class of an image comes from (the config's `evaluation` section), and the
 * path pattern's translation into the regular expression both warehouses run (RE2 syntax,
 * which DuckDB and BigQuery share).
 */
import { existsSync } from 'node:fs';
import { z } from 'zod';

export const EvaluationSchema = z
  .object({
    groundTruth: z.union([
      z.object({ fromPath: z.string().min(1) }).strict(),
      z.object({ file: z.string().min(1) }).strict(),
      z.object({ table: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,1023}$/, "a table of the pipeline's dataset, by name") }).strict(),
    ]),
    /** A JSON object or a two-column CSV (truth,model): ground-truth names to the model's labels. */
    labelMap: z.string().min(1).optional(),
  })
  .strict();

export type GroundTruth =
  /** `regex` has one capture group, the label; `pattern` is what the config said. */
  | { kind: 'path'; pattern: string; regex: string }
  /** A CSV, JSON lines or Parquet file of `uri,label` (local backend). */
  | { kind: 'file'; path: string }
  /** A table of the pipeline's dataset with columns `uri` and `label`. */
  | { kind: 'table'; table: string };

export interface EvaluationSpec {
  groundTruth: GroundTruth;
  /** Absolute path of the label map, when there is one. */
  labelMap?: string;
}

const LABEL = '{label}';

/**
 * `flowers/{label}/*` as a regex over the whole URI: the pattern matches the URI's last path
 * segments, `{label}` one segment's text (or part of it, shortest first), `*` any text
 * within a segment, `**` any text across segments, `?` one character.
 */
export function pathPatternRegex(pattern: string): string {
  const at = pattern.indexOf(LABEL);
  if (at < 0 || pattern.indexOf(LABEL, at + 1) >= 0) {
    throw new Error(`"${pattern}" must name the label exactly once as {label}, e.g. "flowers/{label}/*"`);
  }
  const glob = (text: string) => text.replace(/\*\*|[*?]|[\\^$.|+()[\]{}]/g, (token) => ({ '**': '.*', '*': '[^/]*', '?': '[^/]' })[token] ?? `\\${token}`);
  const body = `${glob(pattern.slice(0, at))}([^/]+?)${glob(pattern.slice(at + LABEL.length))}`;
  return pattern.startsWith('/') || /^[a-z]+:\/\//.test(pattern) ? `^${body}$` : `(?:^|/)${body}$`;
}

export function describeGroundTruth(truth: GroundTruth): string {
  if (truth.kind === 'path') return `from the path, ${truth.pattern}`;
  return truth.kind === 'file' ? `from ${truth.path}` : `from the table ${truth.table}`;
}

/** The config's section resolved: paths absolute, the pattern as a regex; its problems reported through `problem`. */
export function resolveEvaluation(
  parsed: z.output<typeof EvaluationSchema>,
  backend: 'local' | 'gcp',
  at: (path: string) => string,
  problem: (field: string, text: string) => void,
  checkFiles: boolean,
): EvaluationSpec | undefined {
  const truth = parsed.groundTruth;
  const labelMap = parsed.labelMap && at(parsed.labelMap);
  if (labelMap && checkFiles && !existsSync(labelMap))
    problem('evaluation.labelMap', `file not found: ${labelMap}; point it at a JSON or CSV label map, or remove the field`);
  const spec = (groundTruth: GroundTruth): EvaluationSpec => ({ groundTruth, ...(labelMap ? { labelMap } : {}) });
  if ('table' in truth) return spec({ kind: 'table', table: truth.table });
  if ('file' in truth) {
    const path = at(truth.file);
    if (backend === 'gcp')
      problem(
        'evaluation.groundTruth.file',
        'the gcp backend reads ground truth from a table: load the file into one (bq load) and name it in evaluation.groundTruth.table',
      );
    else if (checkFiles && !existsSync(path))
      problem('evaluation.groundTruth.file', `file not found: ${path}; point it at a CSV, JSON lines or Parquet file of uri,label`);
    return spec({ kind: 'file', path });
  }
  try {
    return spec({ kind: 'path', pattern: truth.fromPath, regex: pathPatternRegex(truth.fromPath) });
  } catch (error) {
    problem('evaluation.groundTruth.fromPath', (error as Error).message);
    return undefined;
  }
}
