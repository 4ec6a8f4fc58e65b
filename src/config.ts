/**
 * The one config schema, and the run spec it resolves to at the edge.
 *
 * A config is a YAML or JSON file, with paths relative to the file's folder, then flags and
 * OBJINFER_* environment variables on top. `loadConfig` checks everything before any side
 * effect, lists every problem at once (each naming its field and what to do), and returns a
 * `RunSpec`: plain, serialisable data with every path absolute, every duration in
 * milliseconds and every derived name filled in. Workflows hold the spec; workers receive it
 * once per pipeline (see src/activities), never per step.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { msToNumber, type Duration } from '@temporalio/common/lib/time';
import type { WatchSettings } from './watchSettings';

export type { WatchSettings } from './watchSettings';
import { parse as parseYaml } from 'yaml';
import { localLayoutProblems, resolveSourceUri } from './configPaths';
import { EvaluationSchema, resolveEvaluation, type EvaluationSpec } from './evaluation/spec';
import { isSavedModel } from './models/savedModel';
import { z } from 'zod';
import { MAX_CONCURRENCY } from './workflows/limits';

/**
 * Images per batch unless set: locally 64 (measured best on 2 cores, see docs/reference.md);
 * on gcp a batch is a BigQuery script job whose fixed costs (scheduling, a minimum read per
 * table) are spread over thousands of images.
 */
const DEFAULT_BATCH_SIZE = { local: 64, gcp: 2000 } as const;

/** BigQuery dataset, table and model names: letters, digits, underscores. */
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,1023}$/;
/** BigQuery connection IDs. */
const CONNECTION_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** Cloud Storage bucket names (the common, dot-free form). */
const BUCKET = /^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$/;
/** Google Cloud project IDs. */
const PROJECT_ID = /^[a-z][a-z0-9-]{4,28}[a-z0-9]$/;
/** Pipeline names become workflow and schedule IDs. */
const PIPELINE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

const identifier = (what: string) =>
  z.string().regex(IDENTIFIER, `${what} must start with a letter or underscore and contain only letters, digits and underscores`);

/** A duration in the Temporal SDK's format ("30s", "10m", "1.5h", "1d"), as milliseconds. */
export function durationMs(text: string): number | undefined {
  try {
    const ms = msToNumber(text as Duration);
    return Number.isFinite(ms) && ms >= 0 ? ms : undefined;
  } catch {
    return undefined;
  }
}

const duration = z
  .string()
  .refine((text) => durationMs(text) !== undefined, 'must be a duration such as "30s", "10m", "1.5h" or "1d" (the Temporal SDK format)');
/** A bound that must hold some time: 0 would mean no bound to Temporal, or a step that can never heartbeat in time. */
const bound = duration.refine((text) => (durationMs(text) ?? 0) >= 1000, 'must be at least 1s (0 would mean no bound at all)');

const ModelSchema = z
  .object({
    name: identifier('a model name'),
    type: z.enum(['ONNX', 'TENSORFLOW']).default('ONNX'),
    source: z.string().min(1, 'give a path to the model file (ONNX) or SavedModel folder, or a gs:// URI'),
    labels: z.string().min(1).optional(),
    inputSize: z.union([z.number().int().positive(), z.tuple([z.number().int().positive(), z.number().int().positive()])]).optional(),
    preserveAspectRatio: z.boolean().default(false),
    /** The output to read scores from, when the model has several. */
    output: z.string().min(1).optional(),
    /** What the output holds: probabilities, or logits (softmax applied); auto reads it off the model. */
    scores: z.enum(['auto', 'probabilities', 'logits']).default('auto'),
  })
  .strict();

export const ConfigSchema = z
  .object({
    name: z.string().regex(PIPELINE_NAME, 'a pipeline name uses letters, digits, ".", "_" and "-" (at most 100)').optional(),
    backend: z.enum(['local', 'gcp']).default('local'),
    project: z.string().regex(PROJECT_ID, 'a Google Cloud project ID is 6-30 lowercase letters, digits and hyphens').optional(),
    location: z
      .string()
      .regex(/^[A-Za-z0-9-]{2,40}$/, 'a location such as "US", "EU" or "us-central1"')
      .default('US'),
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
        size: z
          .number()
          .int()
          .min(1, 'must be at least 1 image')
          .max(10_000, 'must be at most 10000 images (a batch is one activity and one BigQuery job)')
          .optional(),
        concurrency: z
          .number()
          .int()
          .min(1, 'must be at least 1')
          .max(MAX_CONCURRENCY, `must be at most ${MAX_CONCURRENCY} batches at once (well below Temporal's 2,000 pending activities per run)`)
          .default(2),
        heartbeatTimeout: bound.default('30s'),
      })
      .strict()
      .prefault({}),
    iam: z
      .object({
        propagationTimeout: bound.default('10m'),
        /** local backend only: how long a fresh grant takes to "propagate". */
        simulatedPropagationDelay: duration.default('0s'),
      })
      .strict()
      .prefault({}),
    /** Re-attempt images whose earlier failure was recorded as permanent. */
    retryFailed: z.boolean().default(false),
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
    /** How `objinfer evaluate` finds each image's true class. */
    evaluation: EvaluationSchema.optional(),
    /** `objinfer watch`: how changes are gathered into micro-batches, and how often the whole source is listed again. */
    watch: z
      .object({
        debounce: duration.default('300ms'),
        maxWait: duration.default('1s'),
        maxBatch: z.number().int().min(1, 'must be at least 1 object').max(10_000, 'must be at most 10000 objects').default(500),
        reconcileEvery: bound.default('10m'),
      })
      .strict()
      .optional(),
    temporal: z
      .object({
        taskQueue: z
          .string()
          .regex(/^[A-Za-z0-9_.-]{1,200}$/, 'a task queue name uses letters, digits, ".", "_" and "-"')
          .default('objinfer'),
      })
      .strict()
      .prefault({}),
  })
  .strict();

type ParsedConfig = z.output<typeof ConfigSchema>;

export interface ModelSpec {
  name: string;
  type: 'ONNX' | 'TENSORFLOW';
  /** Absolute path, or gs:// URI (gcp). */
  source: string;
  labels?: string;
  inputSize?: [number, number];
  preserveAspectRatio: boolean;
  output?: string;
  scores: 'auto' | 'probabilities' | 'logits';
}

/**
 * A pipeline, resolved: what workflows, activities and backends receive. Serialisable;
 * paths absolute; durations in milliseconds; derived names filled in.
 */
export interface RunSpec {
  /** The pipeline's name: its workflow and schedule IDs are made from it. */
  name: string;
  backend: 'local' | 'gcp';
  project: string;
  location: string;
  dataset: string;
  connection: string;
  bucket: string;
  objectTable: string;
  sourceUris: string[];
  model: ModelSpec;
  results: { table: string; errorsTable: string; labelsTable: string; topK: number; keepProbabilities: boolean };
  batch: { size: number; concurrency: number; heartbeatTimeoutMs: number };
  iam: { propagationTimeoutMs: number; simulatedPropagationDelayMs: number };
  retryFailed: boolean;
  reservation?: { name: string; slots: number; edition: 'ENTERPRISE' | 'ENTERPRISE_PLUS' };
  local: { warehouse: string; storage: string };
  temporal: { taskQueue: string };
  evaluation?: EvaluationSpec;
  /** Absent when the config has no `watch` section: `watchSettings` gives the defaults. */
  watch?: WatchSettings;
}

export interface ConfigProblem {
  field: string;
  problem: string;
}

/** A config that cannot run: every problem found, each naming its field. */
/** A problem as one line: its field first, unless the problem's text already begins with it. */
export function problemText(p: ConfigProblem): string {
  return !p.field || p.problem.startsWith(`${p.field} `) || p.problem.startsWith(`${p.field}:`) ? p.problem : `${p.field}: ${p.problem}`;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly problems: ConfigProblem[];

  constructor(problems: ConfigProblem[] | ConfigProblem) {
    const list = Array.isArray(problems) ? problems : [problems];
    super(list.map(problemText).join('; '));
    this.problems = list;
  }

  /** The first problem's field. */
  get field(): string {
    return this.problems[0]?.field ?? '';
  }

  get problem(): string {
    return this.problems[0]?.problem ?? '';
  }
}

export interface LoadOptions {
  /**
   * Check that model, labels and image folders exist here. Off when the files are read on
   * another machine (a worker elsewhere, e.g. under compose): its preflight checks them.
   */
  checkFiles?: boolean;
  env?: NodeJS.ProcessEnv;
}

/** Reads and validates a config file; `overrides` (from flags) win over the file. */
export function loadConfig(file: string, overrides: Record<string, unknown> = {}, options: LoadOptions = {}): RunSpec {
  const path = resolve(file);
  if (!existsSync(path)) throw new ConfigError({ field: '--config', problem: `file not found: ${path}` });
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new ConfigError({ field: '--config', problem: `${path} is not valid YAML or JSON: ${(error as Error).message.split('\n')[0]}` });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError({ field: '--config', problem: `${path} must hold a mapping of settings (see docs/reference.md "Config")` });
  }
  const merged = deepMerge(raw as Record<string, unknown>, envOverrides(options.env ?? process.env), overrides);
  return parseConfig(merged, dirname(path), options);
}

/** Validates an in-memory config; relative paths are resolved against `baseDir`. */
export function parseConfig(raw: unknown, baseDir: string, options: LoadOptions = {}): RunSpec {
  const result = ConfigSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(result.error.issues.map(describeIssue));
  return resolveSpec(result.data, baseDir, options.checkFiles ?? true);
}

function describeIssue(issue: z.core.$ZodIssue): ConfigProblem {
  if (issue.code === 'unrecognized_keys') {
    return {
      field: [...issue.path, issue.keys[0]].join('.'),
      problem: `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}; check the spelling against docs/reference.md "Config"`,
    };
  }
  return { field: issue.path.join('.') || '(top level)', problem: issue.message };
}

function resolveSpec(parsed: ParsedConfig, baseDir: string, checkFiles: boolean): RunSpec {
  const problems: ConfigProblem[] = [];
  const problem = (field: string, text: string) => problems.push({ field, problem: text });
  const at = (path: string) => (isAbsolute(path) ? path : resolve(baseDir, path));
  const inCloud = (path: string) => path.startsWith('gs://');
  const { backend } = parsed;

  if (backend === 'gcp' && !parsed.project) problem('project', 'the gcp backend needs the Google Cloud project ID to run in');
  const sourceUris = parsed.sourceUris.map((uri, index) => {
    try {
      return resolveSourceUri(uri, backend, baseDir, checkFiles);
    } catch (error) {
      problem(`sourceUris.${index}`, (error as Error).message);
      return uri;
    }
  });
  const { inputSize } = parsed.model;
  const model: ModelSpec = {
    ...parsed.model,
    source: inCloud(parsed.model.source) ? parsed.model.source : at(parsed.model.source),
    labels: parsed.model.labels && (inCloud(parsed.model.labels) ? parsed.model.labels : at(parsed.model.labels)),
    inputSize: typeof inputSize === 'number' ? [inputSize, inputSize] : inputSize,
  };
  if (backend === 'local') {
    if (inCloud(model.source)) problem('model.source', 'the local backend reads the model from a local ONNX file, not gs://');
    if (model.labels && inCloud(model.labels)) problem('model.labels', 'the local backend reads labels from a local file, not gs://');
  }
  if (backend === 'gcp' && model.type === 'TENSORFLOW' && inCloud(model.source) && !model.source.endsWith('/')) {
    model.source = `${model.source}/`; // a SavedModel folder: "gs://b/m" must not also match "gs://b/m2/"
  }
  if (backend === 'local' && problems.length === 0) {
    const layout = { modelName: model.name, warehouse: at(parsed.local.warehouse), storage: at(parsed.local.storage), bucket: parsed.bucket, sourceUris };
    for (const [field, text] of localLayoutProblems(layout)) problem(field, text);
  }
  if (checkFiles) {
    const hint =
      backend === 'local'
        ? 'point it at an .onnx file (the demo model is made by `objinfer demo`)'
        : 'point it at a SavedModel folder (saved_model.pb + variables/) or an .onnx file, or at its gs:// location';
    if (!inCloud(model.source) && !existsSync(model.source)) problem('model.source', `file not found: ${model.source}; ${hint}`);
    else if (!inCloud(model.source) && model.type === 'ONNX' && statSync(model.source).isDirectory()) {
      problem('model.source', `${model.source} is a folder; point it at the .onnx file (or set model.type: TENSORFLOW for a SavedModel folder)`);
    } else if (!inCloud(model.source) && model.type === 'TENSORFLOW' && !isSavedModel(model.source)) {
      problem(
        'model.source',
        `${model.source} is not a SavedModel folder (saved_model.pb and variables/); point it at one, or set model.type: ONNX for an .onnx file`,
      );
    }
    if (model.labels && !inCloud(model.labels) && !existsSync(model.labels)) {
      problem('model.labels', `file not found: ${model.labels}; point it at a text file with one label per line, or remove the field`);
    } else if (model.labels && !inCloud(model.labels) && statSync(model.labels).isDirectory()) {
      problem('model.labels', `${model.labels} is a folder; point it at the labels file (a text file with one label per line)`);
    }
  }
  const evaluation = parsed.evaluation && resolveEvaluation(parsed.evaluation, backend, at, problem, checkFiles);
  if (problems.length > 0) throw new ConfigError(problems);

  const errorsTable = parsed.results.errorsTable ?? `${parsed.results.table}_errors`;
  return {
    name: parsed.name ?? `${parsed.dataset}.${parsed.objectTable}`.replace(/_/g, '-'),
    backend,
    project: parsed.project ?? 'local',
    location: parsed.location,
    dataset: parsed.dataset,
    connection: parsed.connection,
    bucket: parsed.bucket,
    objectTable: parsed.objectTable,
    sourceUris,
    model,
    results: {
      table: parsed.results.table,
      errorsTable,
      labelsTable: `${model.name}_labels`,
      topK: parsed.results.topK,
      keepProbabilities: parsed.results.keepProbabilities,
    },
    batch: {
      size: parsed.batch.size ?? DEFAULT_BATCH_SIZE[backend],
      concurrency: parsed.batch.concurrency,
      heartbeatTimeoutMs: durationMs(parsed.batch.heartbeatTimeout)!,
    },
    iam: {
      propagationTimeoutMs: durationMs(parsed.iam.propagationTimeout)!,
      simulatedPropagationDelayMs: durationMs(parsed.iam.simulatedPropagationDelay)!,
    },
    retryFailed: parsed.retryFailed,
    ...(parsed.reservation ? { reservation: parsed.reservation } : {}),
    local: { warehouse: at(parsed.local.warehouse), storage: at(parsed.local.storage) },
    temporal: { taskQueue: parsed.temporal.taskQueue },
    ...(evaluation ? { evaluation } : {}),
    ...(parsed.watch
      ? {
          watch: {
            debounceMs: durationMs(parsed.watch.debounce)!,
            maxWaitMs: durationMs(parsed.watch.maxWait)!,
            maxBatch: parsed.watch.maxBatch,
            reconcileEveryMs: durationMs(parsed.watch.reconcileEvery)!,
          },
        }
      : {}),
  };
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
      out[key] = isPlainObject(value) && isPlainObject(current) ? deepMerge(current, value) : value;
    }
  }
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The spec in a few words, for the workflow memo and the CLI. */
export function describeSpec(spec: RunSpec): Record<string, string> {
  return {
    backend: spec.backend,
    dataset: `${spec.project}.${spec.dataset}`,
    objectTable: spec.objectTable,
    sourceUris: spec.sourceUris.join(', '),
    model: `${spec.model.name} (${spec.model.type})`,
    results: `${spec.dataset}.${spec.results.table}`,
    batch: `${spec.batch.size} images x ${spec.batch.concurrency} at a time`,
  };
}

/** The key workers cache a spec's backend under: a hash of the spec, made at the edge. */
export function specKey(spec: RunSpec): string {
  return createHash('sha256').update(JSON.stringify(spec)).digest('hex').slice(0, 16);
}
