/**
 * The pipeline's contract, shared by workflows, activities, backends, the client and the
 * CLI: what a run takes, what each step returns, what a run reports, and how runs are
 * named and found. Types and definitions only, so it is safe inside the workflow sandbox.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { RunSpec } from '../config';
import type { Stage } from './stages';

// ---- names ----

const PREFIX = 'objinfer-';

/** Workflow, schedule and run IDs, made and read here only. */
export const Ids = {
  /** The pipeline's run: one at a time per pipeline, whoever starts it. */
  pipeline: (name: string) => `${PREFIX}${name}`,
  /** The pipeline's schedule (schedules have their own ID space). */
  schedule: (name: string) => `${PREFIX}${name}`,
  /** What a schedule starts; Temporal appends the slot's time. It runs the pipeline as a child. */
  scheduledRun: (name: string) => `${PREFIX}${name}-scheduled`,
  cleanup: (name: string) => `${PREFIX}${name}-cleanup`,
  watch: (name: string) => `${PREFIX}${name}-watch`,
  /** A watch's `n`th micro-batch: a run of the pipeline's own workflow type. */
  microBatch: (name: string, n: number) => `${PREFIX}${name}-watch-${n}`,
  /** A pipeline name or an ID the user typed, as the pipeline's workflow ID. */
  pipelineFromUserInput: (nameOrId: string) => (nameOrId.startsWith(PREFIX) ? nameOrId : `${PREFIX}${nameOrId}`),
  scheduleFromUserInput: (nameOrId: string) => (nameOrId.startsWith(PREFIX) ? nameOrId : `${PREFIX}${nameOrId}`),
  /** Whether a schedule ID is one of objinfer's. */
  isObjinfer: (id: string) => id.startsWith(PREFIX),
} as const;

/** Search attributes that let the UI and `objinfer list` find runs without opening them. */
export const SearchAttributes = {
  pipeline: defineSearchAttributeKey('ObjinferPipeline', SearchAttributeType.KEYWORD),
  backend: defineSearchAttributeKey('ObjinferBackend', SearchAttributeType.KEYWORD),
  project: defineSearchAttributeKey('ObjinferProject', SearchAttributeType.KEYWORD),
  /** The dataset as written in the config. */
  dataset: defineSearchAttributeKey('ObjinferDataset', SearchAttributeType.KEYWORD),
  model: defineSearchAttributeKey('ObjinferModel', SearchAttributeType.KEYWORD),
  stage: defineSearchAttributeKey('ObjinferStage', SearchAttributeType.KEYWORD),
  imagesDone: defineSearchAttributeKey('ObjinferImagesDone', SearchAttributeType.INT),
} as const;

/** Name and type (as the CLI's `--search-attribute` spells it) of every search attribute above. */
export const SEARCH_ATTRIBUTE_DEFINITIONS: [string, 'Keyword' | 'Int'][] = Object.values(SearchAttributes).map((key) => [
  key.name,
  key.type === SearchAttributeType.INT ? 'Int' : 'Keyword',
]);

export { Stage } from './stages';

// ---- what steps return ----

/** What a provisioning step did. */
export interface StepOutcome {
  step: string;
  action: 'created' | 'exists' | 'updated' | 'skipped' | 'removed';
  detail: string;
  /** Things the user should know (e.g. symlinks skipped); they reach the run's summary. */
  warnings?: string[];
}

export interface ConnectionInfo extends StepOutcome {
  serviceAccount: string;
}

/** The uploaded model, addressed by content. `version` is the prediction version. */
export interface ModelArtifact extends StepOutcome {
  version: string;
  /** A hash of the model's files alone (gcp: a BigQuery model is replaced only when it changes). */
  contentDigest?: string;
  uri: string;
  filesUploaded: number;
  filesSkipped: number;
}

/** Read from the model itself, so the user never has to name tensors. */
export interface ModelDescription {
  version: string;
  inputName: string;
  /** The output whose scores are used. */
  outputName: string;
  /** Every output the model has, so the summary can say which one was chosen. */
  outputNames: string[];
  /** Height and width the images are resized to. */
  inputSize: [number, number];
  classCount: number;
  /** Images per inference run at most: 1 for a model whose batch dimension is fixed at 1. */
  maxBatch?: number;
  /** What the output holds; logits get a softmax before ranking. Absent: probabilities. */
  scores?: 'probabilities' | 'logits';
  /** Where the model was loaded from. */
  modelUri: string;
  /** SHA-256 of the model's content (local): the worker's one session for it, whichever path it is read from. */
  contentDigest?: string;
  /** What the run's summary should say about the model (gcp: a part of the canary that failed). */
  warnings?: string[];
}

export interface PreflightReport {
  warnings: string[];
}

/** Counts only: the URIs themselves never enter workflow history. */
export interface BatchPlan {
  modelVersion: string;
  objectsSeen: number;
  /** Predicted earlier for this version. */
  alreadyDone: number;
  /** Failed earlier (permanently) and not retried in this run. */
  failedBefore: number;
  pending: number;
  batchCount: number;
}

/**
 * Where a batch is: batch `index` of `count` by a stable hash of the URI, then, when it
 * had to be narrowed, one bit per level of a second hash (`split`: the bits so far).
 */
export interface BatchSlice {
  count: number;
  index: number;
  split?: number[];
  /**
   * gcp: the batch's ranks [first, end) in the run's pending table (objects numbered in URI
   * order), so a batch reads only its own rows. Absent (runs from before it; local): by hash.
   */
  ranks?: [number, number];
}

export interface BatchRequest {
  modelVersion: string;
  model: ModelDescription;
  slice: BatchSlice;
  runId: string;
}

/** Heartbeat details of a batch. */
export interface BatchProgress {
  /** Pending objects in the slice, once read: a slice that keeps dying with one is a poison object. */
  pending?: number;
  imagesDone?: number;
  /** gcp: the BigQuery job being waited on. */
  jobId?: string;
  /** Why the step is waiting, for the CLI's progress line. */
  waiting?: string;
  /** What a long step is doing (a big bucket's listing), for the CLI's progress line. */
  doing?: string;
}

export interface BatchResult {
  predicted: number;
  failed: number;
  labelCounts: Record<string, number>;
}

// ---- the run ----

/** The spec and the key workers cache it under (a hash of its JSON, made by the client). */
export interface PipelineRef {
  name: string;
  specKey: string;
}

export interface PipelineProgress {
  pipeline: string;
  stage: Stage;
  batchesDone: number;
  batchesTotal: number;
  imagesDone: number;
  imagesTotal: number;
  imagesFailed: number;
  imagesAlreadyDone: number;
  startedAt: string;
  /** Seconds left at the rate seen so far; absent until a batch has finished. */
  etaSeconds?: number;
  /** Whether new batches start, and how many run at once (`objinfer pause`, `resume`, `set`). */
  control?: RunControlState;
}

/** What people change in a running pipeline without restarting it. */
export interface RunControlState {
  /** Batches in flight finish; none start until resumed. */
  paused: boolean;
  /** Batches at once, from batch.concurrency until set. */
  concurrency: number;
  /** A budget: no batch starts once this many images are done in this run; the rest stay pending for the next. */
  maxImages?: number;
  /** Why, as the last change said. */
  note?: string;
}

export type RunControlChange = Partial<RunControlState>;

export interface PipelineSummary {
  pipeline: string;
  workflowId: string;
  runId: string;
  modelVersion: string;
  objectsSeen: number;
  predicted: number;
  alreadyDone: number;
  /** Failed in an earlier run and not retried now. */
  failedBefore: number;
  /** Failed in this run. */
  failed: number;
  batches: number;
  labelCounts: Record<string, number>;
  provisioned: StepOutcome[];
  warnings: string[];
  resultsTable: string;
  errorsTable: string;
  /** The model output the scores came from. */
  modelOutput: string;
  /** What that output held: probabilities, or logits turned into probabilities by a softmax. */
  modelScores?: 'probabilities' | 'logits';
  durationMs: number;
  /** Time spent in the infer stage, across continue-as-new. */
  inferDurationMs: number;
  /** Set when the run stopped at its budget (`objinfer set RUN --max-images N`): what it left for the next run. */
  stoppedAtBudget?: { maxImages: number; leftPending: number };
}

/** Carried across continue-as-new: everything the run has learnt and done so far. */
export interface ResumeState {
  startedAt: number;
  inferStartedAt: number;
  provisioned: StepOutcome[];
  warnings: string[];
  artifact: ModelArtifact;
  model: ModelDescription;
  plan: BatchPlan;
  /** Batches are rank ranges (BatchSlice.ranks); absent in runs begun before they were. */
  rankSlices?: boolean;
  nextBatch: number;
  predicted: number;
  failed: number;
  labelCounts: Record<string, number>;
  /** Carried across continue-as-new: a paused run stays paused. */
  control?: RunControlState;
}

export interface PipelineInput {
  /** A micro-batch of a watch: provisioning is done; the run plans and infers only. */
  prepared?: Prepared;
  spec: RunSpec;
  specKey: string;
  /** False when the server lacks objinfer's search attributes: then none are upserted. */
  searchAttributes?: boolean;
  resume?: ResumeState;
  /** A budget for this run (`objinfer run --max-images N`): no batch starts once this many images are done. */
  maxImages?: number;
}

/** What a watch hands each micro-batch: it provisioned once, so the run plans and infers only. */
export interface Prepared {
  artifact: ModelArtifact;
  model: ModelDescription;
  warnings: string[];
}

export interface WatchInput {
  spec: RunSpec;
  specKey: string;
  searchAttributes?: boolean;
  /** What a watch that continued as new carries over. */
  carried?: WatchCarried;
}

export interface WatchCarried {
  prepared: Prepared;
  startedAt: number;
  microBatches: number;
  predicted: number;
  failed: number;
  /** Changes announced before the last run ended and not yet predicted. */
  pendingChanges: number;
}

/** The `watchProgress` query's answer, and a watch's result when it is stopped. */
export interface WatchProgress {
  pipeline: string;
  state: 'provisioning' | 'watching' | 'predicting';
  startedAt: string;
  /** Micro-batch runs finished, and what they did. */
  microBatches: number;
  predicted: number;
  failed: number;
  /** Objects announced as changed and not yet in a finished micro-batch. */
  pendingChanges: number;
  last?: { workflowId: string; predicted: number; failed: number; alreadyDone: number; durationMs: number };
}

export interface CleanupInput {
  spec: RunSpec;
  specKey: string;
  deleteData: boolean;
}

/** What a scheduled slot did: ran the pipeline, or stood aside for a run already going. */
export type ScheduledOutcome = { ran: true; summary: PipelineSummary } | { ran: false; reason: string; runningWorkflowId: string };

/** The memo key under which a run keeps its spec, for workers that have not seen it yet. */
export const SPEC_MEMO_KEY = 'objinferSpec';

export const progressQuery = defineQuery<PipelineProgress>('progress');
/** Pause, resume, or change the concurrency of a running pipeline; answers the state after the change. */
/** From a watch's watcher to its workflow: this many objects changed and are in the object table. */
export const objectsChangedSignal = defineSignal<[{ changed: number }]>('objectsChanged');
export const watchProgressQuery = defineQuery<WatchProgress>('watchProgress');
export const controlUpdate = defineUpdate<RunControlState, [RunControlChange]>('control');
