/**
 * The one config schema, shared by the CLI and the worker: a YAML or JSON file, with
 * paths resolved against the file's folder, then flags and OBJINFER_* environment
 * variables on top. Everything is checked here, before any side effect, and every
 * message names the field and what to do.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseDuration } from './duration';

/** BigQuery dataset, table and model names: letters, digits, underscores. */
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,1023}$/;
/** BigQuery connection IDs. */
const CONNECTION_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** Cloud Storage bucket names (the common, dot-free form). */
const BUCKET = /^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$/;
/** Google Cloud project IDs. */
const PROJECT_ID = /^[a-z][a-z0-9-]{4,28}[a-z0-9]$/;
/** Pipeline names become workflow IDs. */
const PIPELINE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

const identifier = (what: string) =>
  z.string().regex(IDENTIFIER, `${what} must start with a letter or underscore and contain only letters, digits and underscores`);

const duration = z
  .string()
  .refine((text) => parseDuration(text) !== undefined, 'must be a duration such as "30s", "10m" or "1h"');

const ModelSchema = z
  .object({
    name: identifier('a model name'),
    type: z.enum(['ONNX', 'TENSORFLOW']).default('ONNX'),
    source: z.string().min(1, 'give a path to the model file (ONNX) or SavedModel folder, or a gs:// URI'),
    labels: z.string().min(1).optional(),
    inputSize: z
      .union([z.number().int().positive(), z.tuple([z.number().int().positive(), z.number().int().positive()])])
      .optional(),
    preserveAspectRatio: z.boolean().default(false),
  })
  .strict();

export const ConfigSchema = z
  .object({
    name: z.string().regex(PIPELINE_NAME, 'a pipeline name uses letters, digits, ".", "_" and "-" (at most 100)').optional(),
    backend: z.enum(['local', 'gcp']).default('local'),
    project: z.string().regex(PROJECT_ID, 'a Google Cloud project ID is 6-30 lowercase letters, digits and hyphens').optional(),
    location: z.string().regex(/^[A-Za-z0-9-]{2,40}$/, 'a location such as "US", "EU" or "us-central1"').default('US'),
    dataset: identifier('a dataset name'),
    connection: z.string().regex(CONNECTION_ID, 'a connection ID uses letters, digits, "_" and "-" (at most 64)').default('objinfer-connection'),
    bucket: z.string().regex(BUCKET, 'a bucket name is 3-63 lowercase letters, digits, "_" and "-", starting and ending with a letter or digit'),
    objectTable: identifier('an object table name'),
    sourceUris: z.array(z.string().min(1)).min(1, 'list at least one URI pattern of images'),
    model: ModelSchema,
    results: z
      .object({
        table: identifier('a results table name').default('predictions'),
        errorsTable: identifier('an errors table name').optional(),
        topK: z.number().int().min(1).max(100).default(5),
        keepProbabilities: z.boolean().default(false),
      })
      .strict()
      .prefault({}),
    batch: z
      .object({
        size: z.number().int().min(1, 'must be at least 1 image').max(10_000, 'must be at most 10000 images (a batch is one activity and one BigQuery job)').default(64),
        concurrency: z
          .number()
          .int()
          .min(1, 'must be at least 1')
          .max(64, 'must be at most 64 batches at once (well below Temporal\'s 2,000 pending activities per run)')
          .default(2),
        heartbeatTimeout: duration.default('30s'),
      })
      .strict()
      .prefault({}),
    iam: z
      .object({
        propagationTimeout: duration.default('10m'),
        /** local backend only: how long a fresh grant takes to "propagate". */
        simulatedPropagationDelay: duration.default('0s'),
      })
      .strict()
      .prefault({}),
    /** gcp only: an Enterprise reservation and a QUERY assignment for the project (imported models need one). */
    reservation: z
      .object({
        name: z.string().regex(/^[a-z][a-z0-9-]{0,63}$/, 'a reservation ID uses lowercase letters, digits and "-"'),
        slots: z.number().int().min(0).max(10_000).default(50),
        edition: z.enum(['ENTERPRISE', 'ENTERPRISE_PLUS']).default('ENTERPRISE'),
      })
      .strict()
      .optional(),
    local: z
      .object({
        warehouse: z.string().default('.objinfer/warehouse.duckdb'),
        storage: z.string().default('.objinfer/storage'),
      })
      .strict()
      .prefault({}),
    temporal: z
      .object({
        taskQueue: z.string().regex(/^[A-Za-z0-9_.-]{1,200}$/).default('objinfer'),
      })
      .strict()
      .prefault({}),
  })
  .strict();

type ParsedConfig = z.output<typeof ConfigSchema>;

/** A validated config with every path absolute: what workflows and activities receive. */
export interface PipelineConfig extends Omit<ParsedConfig, 'name' | 'project' | 'results' | 'model'> {
  name: string;
  project: string;
  model: Omit<ParsedConfig['model'], 'inputSize'> & { inputSize?: [number, number] };
  results: ParsedConfig['results'] & { errorsTable: string };
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly field: string,
    readonly problem: string,
  ) {
    super(`${field ? `${field}: ` : ''}${problem}`);
  }
}

/** Reads and validates a config file; `overrides` (from flags) win over the file. */
export function loadConfig(file: string, overrides: Record<string, unknown> = {}, env = process.env): PipelineConfig {
  const path = resolve(file);
  if (!existsSync(path)) throw new ConfigError('--config', `file not found: ${path}`);
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new ConfigError('--config', `${path} is not valid YAML or JSON: ${(error as Error).message.split('\n')[0]}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError('--config', `${path} must hold a mapping of settings (see README "Config reference")`);
  }
  return parseConfig(deepMerge(raw as Record<string, unknown>, envOverrides(env), overrides), dirname(path));
}

/** Validates an in-memory config; relative paths are resolved against `baseDir`. */
export function parseConfig(raw: unknown, baseDir: string): PipelineConfig {
  const result = ConfigSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const field = issue.path.join('.');
    const problem =
      issue.code === 'unrecognized_keys'
        ? `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}; check the spelling against README "Config reference"`
        : issue.message;
    const keyPath = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0]].join('.') : field;
    throw new ConfigError(keyPath || '(top level)', problem);
  }
  return resolveConfig(result.data, baseDir);
}

function resolveConfig(parsed: ParsedConfig, baseDir: string): PipelineConfig {
  const at = (path: string) => (isAbsolute(path) ? path : resolve(baseDir, path));
  const backend = parsed.backend;
  if (backend === 'gcp' && !parsed.project) {
    throw new ConfigError('project', 'the gcp backend needs the Google Cloud project ID to run in');
  }
  const sourceUris = parsed.sourceUris.map((uri, index) => resolveSourceUri(uri, backend, baseDir, `sourceUris.${index}`));
  const inputSize = parsed.model.inputSize;
  const model = {
    ...parsed.model,
    source: parsed.model.source.startsWith('gs://') ? parsed.model.source : at(parsed.model.source),
    labels: parsed.model.labels && (parsed.model.labels.startsWith('gs://') ? parsed.model.labels : at(parsed.model.labels)),
    inputSize: typeof inputSize === 'number' ? ([inputSize, inputSize] as [number, number]) : inputSize,
  };
  if (backend === 'local') {
    if (model.source.startsWith('gs://')) throw new ConfigError('model.source', 'the local backend reads the model from a local ONNX file, not gs://');
    if (model.type !== 'ONNX') {
      throw new ConfigError('model.type', 'the local backend runs ONNX models; convert a SavedModel with tf2onnx (see README "Your own model")');
    }
    requireFile(model.source, 'model.source', 'point it at an .onnx file (the demo model is made by `objinfer demo`)');
  }
  if (backend === 'gcp' && !model.source.startsWith('gs://')) {
    requireFile(model.source, 'model.source', 'point it at a SavedModel folder (saved_model.pb + variables/) or an .onnx file, or at its gs:// location');
  }
  if (model.labels && !model.labels.startsWith('gs://')) {
    requireFile(model.labels, 'model.labels', 'point it at a text file with one label per line, or remove the field');
  }
  return {
    ...parsed,
    name: parsed.name ?? `${parsed.dataset}.${parsed.objectTable}`.replace(/_/g, '-'),
    project: parsed.project ?? 'local',
    sourceUris,
    model,
    results: { ...parsed.results, errorsTable: parsed.results.errorsTable ?? `${parsed.results.table}_errors` },
    local: { warehouse: at(parsed.local.warehouse), storage: at(parsed.local.storage) },
  };
}

function resolveSourceUri(uri: string, backend: 'local' | 'gcp', baseDir: string, field: string): string {
  if (backend === 'gcp') {
    if (!/^gs:\/\/[a-z0-9][a-z0-9._-]{1,220}\/.+/.test(uri)) {
      throw new ConfigError(field, `"${uri}" is not a gs://BUCKET/PATH pattern; the gcp backend reads images from Cloud Storage`);
    }
    return uri;
  }
  if (uri.startsWith('gs://')) {
    throw new ConfigError(field, `"${uri}" is in Cloud Storage; the local backend reads file:// URIs or paths (use backend: gcp for gs://)`);
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(uri) && !uri.startsWith('file://')) {
    throw new ConfigError(field, `"${uri}" has a scheme the local backend cannot read; use a file:// URI or a path`);
  }
  const path = uri.startsWith('file://') ? fileURLToPath(uri.replace(/\*/g, '%2A')).replace(/%2A/g, '*') : resolve(baseDir, uri);
  const staticPart = path.split(/[*?[]/)[0]!;
  const root = staticPart.endsWith('/') ? staticPart : dirname(staticPart);
  if (!existsSync(root) || !statSync(root).isDirectory()) {
    throw new ConfigError(field, `folder not found: ${root}; point the pattern at an existing folder of images`);
  }
  return pathToFileURL(path).href.replace(/%2A/g, '*').replace(/%3F/g, '?');
}

function requireFile(path: string, field: string, hint: string): void {
  if (!existsSync(path)) throw new ConfigError(field, `file not found: ${path}; ${hint}`);
}

/** OBJINFER_BATCH_SIZE=8 sets batch.size, OBJINFER_MODEL_SOURCE sets model.source, and so on. */
function envOverrides(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const known: Record<string, [string[], (v: string) => unknown]> = {
    OBJINFER_BACKEND: [['backend'], String],
    OBJINFER_PROJECT: [['project'], String],
    OBJINFER_BATCH_SIZE: [['batch', 'size'], Number],
    OBJINFER_BATCH_CONCURRENCY: [['batch', 'concurrency'], Number],
    OBJINFER_TASK_QUEUE: [['temporal', 'taskQueue'], String],
    OBJINFER_WAREHOUSE: [['local', 'warehouse'], String],
  };
  const out: Record<string, unknown> = {};
  for (const [name, [path, convert]] of Object.entries(known)) {
    const value = env[name];
    if (value !== undefined && value !== '') setPath(out, path, convert(value));
  }
  return out;
}

export function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    node[key] = typeof node[key] === 'object' && node[key] !== null ? node[key] : {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

function deepMerge(...layers: Record<string, unknown>[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer)) {
      const current = out[key];
      out[key] =
        isPlainObject(value) && isPlainObject(current) ? deepMerge(current, value) : value;
    }
  }
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The config in a few words, for the workflow memo and the CLI. */
export function describeConfig(config: PipelineConfig): Record<string, string> {
  return {
    backend: config.backend,
    dataset: `${config.project}.${config.dataset}`,
    objectTable: config.objectTable,
    sourceUris: config.sourceUris.join(', '),
    model: `${config.model.name} (${config.model.type})`,
    results: `${config.dataset}.${config.results.table}`,
    batch: `${config.batch.size} images x ${config.batch.concurrency} at a time`,
  };
}
