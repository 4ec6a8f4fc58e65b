/**
 * What a pipeline run takes, reports and returns: shared by the workflow, the client
 * and the CLI. Types and definitions only, so it is safe inside the workflow sandbox.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { defineQuery } from '@temporalio/workflow';
import type { BatchPlan, ModelArtifact, ModelDescription, StepOutcome } from '../backends/backend';
import type { PipelineConfig } from '../config';

export const WORKFLOW_TYPE = 'inferencePipeline';

export const Stage = ['preflight', 'provision', 'plan', 'infer', 'done'] as const;
export type Stage = (typeof Stage)[number];

/** Search attributes that let the UI and `objinfer list` find runs without opening them. */
export const SearchAttributes = {
  backend: defineSearchAttributeKey('ObjinferBackend', SearchAttributeType.KEYWORD),
  dataset: defineSearchAttributeKey('ObjinferDataset', SearchAttributeType.KEYWORD),
  model: defineSearchAttributeKey('ObjinferModel', SearchAttributeType.KEYWORD),
  stage: defineSearchAttributeKey('ObjinferStage', SearchAttributeType.KEYWORD),
  imagesDone: defineSearchAttributeKey('ObjinferImagesDone', SearchAttributeType.INT),
} as const;

/** `temporal server start-dev --search-attribute` arguments for the keys above. */
export const SEARCH_ATTRIBUTE_DEFINITIONS: Record<string, 'Keyword' | 'Int'> = {
  ObjinferBackend: 'Keyword',
  ObjinferDataset: 'Keyword',
  ObjinferModel: 'Keyword',
  ObjinferStage: 'Keyword',
  ObjinferImagesDone: 'Int',
};

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
}

export interface PipelineSummary {
  pipeline: string;
  workflowId: string;
  runId: string;
  modelVersion: string;
  objectsSeen: number;
  predicted: number;
  alreadyDone: number;
  failed: number;
  batches: number;
  labelCounts: Record<string, number>;
  provisioned: StepOutcome[];
  warnings: string[];
  resultsTable: string;
  errorsTable: string;
  durationMs: number;
  /** Time spent in the infer stage, across continue-as-new. */
  inferDurationMs: number;
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
  nextBatch: number;
  predicted: number;
  failed: number;
  labelCounts: Record<string, number>;
}

export interface PipelineInput {
  config: PipelineConfig;
  /** False when the server lacks objinfer's search attributes: then none are upserted. */
  searchAttributes?: boolean;
  resume?: ResumeState;
}

export const progressQuery = defineQuery<PipelineProgress>('progress');

export function workflowIdFor(pipelineName: string): string {
  return `objinfer-${pipelineName}`;
}
