/**
 * The config's rules about places: how source patterns resolve, and that the pipeline's own
 * files (the warehouse, the bucket folder with the model) never lie among the images it
 * lists. Checked before any side effect, like the rest of the config.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { globMatcher, MAX_PATTERN_LENGTH, MAX_PATTERN_WILDCARDS, patternToPath } from './glob';

/** Longest model name on the local backend: it names a folder, and a file name is at most 255 bytes. */
export const MAX_LOCAL_MODEL_NAME = 200;

export function resolveSourceUri(uri: string, backend: 'local' | 'gcp', baseDir: string, checkFiles: boolean): string {
  const wildcards = uri.match(/[*?]/g)?.length ?? 0;
  if (uri.length > MAX_PATTERN_LENGTH)
    throw new Error(`a pattern of ${uri.length} characters is longer than the ${MAX_PATTERN_LENGTH} allowed; list the folder instead`);
  if (wildcards > MAX_PATTERN_WILDCARDS) {
    throw new Error(
      `a pattern with ${wildcards} wildcards is more than the ${MAX_PATTERN_WILDCARDS} allowed; one "*" matches any run of characters, "/" included`,
    );
  }
  if (backend === 'gcp') {
    if (!/^gs:\/\/[a-z0-9][a-z0-9._-]{1,220}\/.+/.test(uri)) {
      throw new Error(`"${uri}" is not a gs://BUCKET/PATH pattern; the gcp backend reads images from Cloud Storage`);
    }
    return uri;
  }
  if (uri.startsWith('gs://')) {
    throw new Error(`"${uri}" is in Cloud Storage; the local backend reads file:// URIs or paths (use backend: gcp for gs://)`);
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(uri) && !uri.startsWith('file://')) {
    throw new Error(`"${uri}" has a scheme the local backend cannot read; use a file:// URI or a path`);
  }
  const path = uri.startsWith('file://') ? fileURLToPath(uri.replace(/\*/g, '%2A')).replace(/%2A/g, '*') : resolve(baseDir, uri);
  const staticPart = path.split(/[*?[]/)[0]!;
  const root = staticPart.endsWith('/') ? staticPart : dirname(staticPart);
  if (checkFiles && (!existsSync(root) || !statSync(root).isDirectory())) {
    throw new Error(`folder not found: ${root}; point the pattern at an existing folder of images`);
  }
  return pathToFileURL(path).href.replace(/%2A/g, '*').replace(/%3F/g, '?');
}

export interface LocalLayout {
  modelName: string;
  /** Absolute paths. */
  warehouse: string;
  storage: string;
  bucket: string;
  /** Resolved patterns (file:// URIs). */
  sourceUris: string[];
}

/** Problems with where the local backend's files are, as (field, problem) pairs. */
export function localLayoutProblems(layout: LocalLayout): [string, string][] {
  const problems: [string, string][] = [];
  if (layout.modelName.length > MAX_LOCAL_MODEL_NAME) {
    problems.push([
      'model.name',
      `${layout.modelName.length} characters is longer than the ${MAX_LOCAL_MODEL_NAME} the local backend allows (the name is a folder's)`,
    ]);
  }
  const bucketFolder = join(layout.storage, layout.bucket);
  // What the pipeline writes: the warehouse and its write-ahead log, the model and labels in the bucket.
  const own: [string, string, string][] = [
    ['local.warehouse', layout.warehouse, 'the warehouse'],
    ['local.warehouse', `${layout.warehouse}.wal`, "the warehouse's write-ahead log"],
    ['local.storage', join(bucketFolder, 'models', layout.modelName, '0123456789ab', 'model.onnx'), 'the model objinfer copies into the bucket'],
    ['local.storage', join(bucketFolder, 'models', layout.modelName, '0123456789ab', 'labels.txt'), 'the labels objinfer copies into the bucket'],
  ];
  layout.sourceUris.forEach((uri, index) => {
    if (!uri.startsWith('file://')) return;
    const pattern = patternToPath(uri);
    const matches = globMatcher(pattern);
    const hit = own.find(([, path]) => matches(path));
    if (hit) {
      problems.push([
        `sourceUris.${index}`,
        `${uri} also matches ${hit[2]} (${hit[1]}): narrow the pattern (e.g. images/*.jpg) or set ${hit[0]} to a place outside it`,
      ]);
    }
  });
  return problems;
}
