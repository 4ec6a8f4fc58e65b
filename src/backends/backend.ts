/**
 * The Backend port: every step of the procedure, in terms a workflow can sequence
 * without knowing whether BigQuery or DuckDB does the work. Each method is idempotent:
 * calling it twice leaves the same state and returns the same answer.
 * Backends raise ObjinferError (see ../errors) for failures a retry policy must classify.
 */
import type { PipelineConfig } from '../config';

/** What a provisioning step did. */
export interface StepOutcome {
  step: string;
  action: 'created' | 'exists' | 'updated' | 'skipped' | 'removed';
  detail: string;
}

export interface ConnectionInfo extends StepOutcome {
  serviceAccount: string;
}

/** The uploaded model, addressed by content: the version is a hash of its files. */
export interface ModelArtifact extends StepOutcome {
  version: string;
  uri: string;
  filesUploaded: number;
  filesSkipped: number;
}

/** Read from the model itself, so the user never has to name tensors. */
export interface ModelDescription {
  version: string;
  inputName: string;
  outputName: string;
  /** Height and width the images are resized to. */
  inputSize: [number, number];
  classCount: number;
  /** Where the labels file lives (one label per line); absent: classes are named by index. */
  labelsUri?: string;
  /** Where the model was loaded from. */
  modelUri: string;
}

export interface PreflightReport {
  warnings: string[];
}

/** Counts only: the URIs themselves never enter workflow history. */
export interface BatchPlan {
  modelVersion: string;
  objectsSeen: number;
  alreadyDone: number;
  pending: number;
  batchCount: number;
}

export interface BatchRequest {
  modelVersion: string;
  model: ModelDescription;
  batchIndex: number;
  batchCount: number;
  runId: string;
}

/** Heartbeat details: images done (local) or the BigQuery job being waited on (gcp). */
export interface BatchProgress {
  imagesDone?: number;
  jobId?: string;
}

export interface BatchResult {
  batchIndex: number;
  predicted: number;
  failed: number;
  labelCounts: Record<string, number>;
}

/** One row of the results table, as the CLI shows it. */
export interface ResultRow {
  uri: string;
  generation: string;
  modelVersion: string;
  label: string;
  score: number;
  topK: { label: string; index: number; score: number }[];
  runId: string;
  predictedAt: string;
}

export interface ErrorRow {
  uri: string;
  generation: string;
  modelVersion: string;
  error: string;
  runId: string;
  failedAt: string;
}

/** One call the pipeline would make, for `objinfer plan`. */
export interface PlannedCall {
  step: string;
  call: string;
  /** BigQuery's dry-run estimate, when it could be asked. */
  estimatedBytes?: number;
}

export interface Backend {
  preflight(): Promise<PreflightReport>;
  ensureDataset(): Promise<StepOutcome>;
  /** gcp: the optional Enterprise reservation and the project's QUERY assignment. */
  ensureReservation(): Promise<StepOutcome[]>;
  ensureConnection(): Promise<ConnectionInfo>;
  ensureBucket(): Promise<StepOutcome>;
  grantObjectViewer(serviceAccount: string): Promise<StepOutcome[]>;
  uploadModel(): Promise<ModelArtifact>;
  ensureObjectTable(): Promise<StepOutcome>;
  ensureModel(artifact: ModelArtifact): Promise<StepOutcome>;
  describeModel(artifact: ModelArtifact): Promise<ModelDescription>;
  ensureResultTables(model: ModelDescription): Promise<StepOutcome[]>;
  planBatches(modelVersion: string): Promise<BatchPlan>;
  /** `signal` aborts the batch (the run was cancelled); nothing of it is written then. */
  predictBatch(request: BatchRequest, onProgress?: (progress: BatchProgress) => void, signal?: AbortSignal): Promise<BatchResult>;
  /** Newest first. Readable while a worker is writing. */
  readResults(limit: number): Promise<ResultRow[]>;
  readErrors(limit: number): Promise<ErrorRow[]>;
  /** Every call a run would make, in order, without changing anything. */
  describePlan(): Promise<PlannedCall[]>;
  /**
   * Removes what objinfer created for this pipeline, and nothing it did not create.
   * Data (results, errors) and the dataset, connection and bucket go only with `deleteData`.
   */
  cleanup(options: { deleteData: boolean }): Promise<StepOutcome[]>;
}

export type BackendFactory = (config: PipelineConfig) => Backend;
