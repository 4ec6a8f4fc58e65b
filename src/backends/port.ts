/**
 * The ports the pipeline drives: every step of the procedure, in terms a workflow can
 * sequence without knowing whether BigQuery or DuckDB does the work. Each method is
 * idempotent: calling it twice leaves the same state and returns the same answer.
 * Adapters raise ObjinferError (see ../errors) for failures a retry policy must classify.
 *
 * Each backend folder has the same modules: provision, objectTable, predict, results,
 * plan and cleanup, composed in its index.ts.
 */
import type { RunSpec, WatchSettings } from '../config';
import type { ComparisonCounts, ComparisonQuery, EvaluationCounts, EvaluationQuery, GroundTruthQuery, ImageTruth } from '../evaluation/types';
import type {
  BatchPlan,
  BatchProgress,
  BatchRequest,
  BatchResult,
  ConnectionInfo,
  ModelArtifact,
  ModelDescription,
  PreflightReport,
  StepOutcome,
} from '../workflows/contract';

export interface ProvisioningPort {
  preflight(): Promise<PreflightReport>;
  ensureDataset(): Promise<StepOutcome>;
  /** gcp: the optional Enterprise reservation and the project's QUERY assignment. */
  ensureReservation(): Promise<StepOutcome[]>;
  ensureConnection(): Promise<ConnectionInfo>;
  ensureBucket(): Promise<StepOutcome>;
  grantObjectViewer(serviceAccount: string): Promise<StepOutcome[]>;
  uploadModel(): Promise<ModelArtifact>;
  /**
   * `stepKey` is the same for every attempt of one run's step (gcp: the metadata refresh is a
   * job named by it, so a retry re-attaches to a refresh still running instead of restarting it).
   */
  ensureObjectTable(stepKey?: string): Promise<StepOutcome>;
  ensureModel(artifact: ModelArtifact): Promise<StepOutcome>;
  describeModel(artifact: ModelArtifact): Promise<ModelDescription>;
  ensureResultTables(model: ModelDescription): Promise<StepOutcome[]>;
}

export interface InferencePort {
  /** `runId` names what the plan writes for the run's batches (gcp: its pending table). */
  planBatches(modelVersion: string, runId: string): Promise<BatchPlan>;
  /** `signal` aborts the batch (the run was cancelled); nothing of it is written after that. */
  predictBatch(request: BatchRequest, onProgress?: (progress: BatchProgress) => void, signal?: AbortSignal): Promise<BatchResult>;
  /**
   * Records the slice's pending objects as failed with `reason`: used for an object that
   * kills every worker that processes it, once narrowing has isolated it.
   */
  recordUnprocessable(request: BatchRequest, reason: string): Promise<BatchResult>;
}

/** What one watcher saw before it ended (`objinfer watch`). */
export interface WatchOutcome {
  /** File-system events or notifications received for objects the source patterns match. */
  events: number;
  /** Micro-batches of them recorded in the object table. */
  microBatches: number;
  /** Objects that got a new generation or were removed, by events and by the watcher's first listing. */
  changed: number;
  /** What the first listing found. */
  reconciled?: string;
}

export interface WatchPort {
  /**
   * Watches the source for new, changed and removed objects until `signal` aborts or
   * `settings.reconcileEveryMs` is over. It first lists the whole source once (what changed
   * while nothing watched); then it gathers changes into micro-batches, records each in the
   * object table, and calls `onChanges` with how many objects changed. Duplicate events
   * change nothing. The backend that cannot watch throws a non-retryable ObjinferError.
   */
  watchSource(settings: WatchSettings, onChanges: (changed: number) => Promise<void>, signal: AbortSignal): Promise<WatchOutcome>;
}

/** Filters shared by `objinfer results`, `report` and `export`. */
export interface ResultFilter {
  /** At most this many rows; all when absent. */
  limit?: number;
  label?: string;
  minScore?: number;
  maxScore?: number;
  runId?: string;
  since?: Date;
  /**
   * Rows of every generation an object had, and of objects gone from the bucket. By default
   * only rows of each object's current generation (as the object table last listed it) are
   * read: a replaced image's old prediction or error is history, not what the image is now.
   */
  history?: boolean;
}

export interface LabelScore {
  label: string;
  index: number;
  score: number;
}

/** One row of the results table. */
export interface ResultRow {
  uri: string;
  generation: string;
  modelVersion: string;
  label: string;
  score: number;
  topK: LabelScore[];
  runId: string;
  predictedAt: string;
}

export type FailureKind = 'permanent' | 'transient';

export interface ErrorRow {
  uri: string;
  generation: string;
  modelVersion: string;
  error: string;
  kind: FailureKind;
  runId: string;
  failedAt: string;
}

/** The read side: what the CLI, the report and exports need, without provisioning anything. */
export interface ResultsPort {
  /** Newest first. Readable while a worker is writing. */
  readResults(filter?: ResultFilter): Promise<ResultRow[]>;
  /** Newest first. */
  readErrors(filter?: Omit<ResultFilter, 'label' | 'minScore' | 'maxScore'>): Promise<ErrorRow[]>;
  /**
   * The bytes of an object a result names, where the files this process can open do not
   * reach it (gs://), for the report's thumbnails. Throws when it is over `maxBytes`.
   */
  readObject?(uri: string, maxBytes: number): Promise<Buffer>;
  /** Counts of the current images by ground truth, prediction and rank, for `objinfer evaluate`. */
  evaluationCounts(query: EvaluationQuery): Promise<EvaluationCounts>;
  /** Counts of the current images by ground truth and the top-1 label of each of two versions, for `objinfer compare`. */
  comparisonCounts(query: ComparisonQuery): Promise<ComparisonCounts>;
  /**
   * The truth of each current image that has one, as a model label, worked out by the same
   * query as the evaluation's: a row per image, for exports and the report, which read a row
   * per image anyway.
   */
  groundTruthOf(query: GroundTruthQuery): Promise<ImageTruth[]>;
}

/** One call the pipeline would make, for `objinfer plan`. */
export interface PlannedCall {
  step: string;
  call: string;
  /** BigQuery's dry-run estimate, when it could be asked. */
  estimatedBytes?: number;
  /** What the estimate covers, e.g. "per batch of 500 objects". */
  estimateNote?: string;
}

export interface PlanPort {
  /** Every call a run would make, in order, without changing anything. */
  describePlan(): Promise<PlannedCall[]>;
}

export interface CleanupPort {
  /**
   * Removes what objinfer created for this pipeline, and nothing it did not create.
   * Data (results, errors) and the dataset, connection and bucket go only with `deleteData`.
   */
  cleanup(options: { deleteData: boolean }): Promise<StepOutcome[]>;
}

export interface Backend extends ProvisioningPort, InferencePort, WatchPort, ResultsPort, PlanPort, CleanupPort {
  /** Releases clients, sessions and handles (the worker keeps a backend per pipeline). */
  close?(): Promise<void>;
}

export type BackendFactory = (spec: RunSpec) => Backend;
