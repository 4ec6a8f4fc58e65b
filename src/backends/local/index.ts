/**
 * The local backend: the whole procedure on one machine, offline. The dataset is a DuckDB
 * schema, the bucket a folder, the connection and its grants rows in the warehouse, the
 * object table a listing of file:// patterns, and the model an ONNX file run by ONNX
 * Runtime, with images decoded and resized as BigQuery does (src/images).
 *
 * Same shape as ../gcp: provision, objectTable, predict, results, plan, cleanup.
 */
import type { RunSpec, WatchSettings } from '../../config';
import type { BatchProgress, BatchRequest, ModelArtifact, ModelDescription } from '../../workflows/contract';
import type { Backend } from '../port';
import { cleanup } from './cleanup';
import { LocalContext } from './context';
import { localFailure } from './failures';
import { ensureObjectTable } from './objectTable';
import { describePlan } from './plan';
import { planBatches, predictBatch, recordUnprocessable } from './predict';
import * as provision from './provision';
import { LocalResults } from './results';
import { watchSource } from './watch';

export function createLocalBackend(spec: RunSpec): Backend {
  const ctx = new LocalContext(spec);
  const results = new LocalResults(spec);
  /** Every step's failure classified (failures.ts); a cancelled batch's abort passes as it is. */
  const step =
    <A extends unknown[], T>(name: string, work: (...args: A) => Promise<T>) =>
    async (...args: A): Promise<T> => {
      try {
        return await work(...args);
      } catch (error) {
        const signal = args.find((arg): arg is AbortSignal => arg instanceof AbortSignal);
        throw signal?.aborted ? error : localFailure(error, spec, name);
      }
    };
  return {
    preflight: step('preflight', () => provision.preflight(ctx)),
    ensureDataset: step('dataset', () => provision.ensureDataset(ctx)),
    ensureReservation: async () => [], // reservations are a BigQuery matter
    ensureConnection: step('connection', () => provision.ensureConnection(ctx)),
    ensureBucket: step('bucket', () => provision.ensureBucket(ctx)),
    grantObjectViewer: step('grant', (serviceAccount: string) => provision.grantObjectViewer(ctx, serviceAccount)),
    uploadModel: step('upload model', () => provision.uploadModel(ctx)),
    ensureObjectTable: step('object table', () => ensureObjectTable(ctx)),
    ensureModel: step('model', (artifact: ModelArtifact) => provision.ensureModel(ctx, artifact)),
    describeModel: step('describe model', (artifact: ModelArtifact) => provision.describeModel(ctx, artifact)),
    ensureResultTables: step('tables', (model: ModelDescription) => provision.ensureResultTables(ctx, model)),
    planBatches: step('plan', (version: string) => planBatches(ctx, version)),
    predictBatch: step('batch', (request: BatchRequest, onProgress?: (progress: BatchProgress) => void, signal?: AbortSignal) =>
      predictBatch(ctx, request, onProgress, signal),
    ),
    recordUnprocessable: step('set aside', (request: BatchRequest, reason: string) => recordUnprocessable(ctx, request, reason)),
    watchSource: step('watch', (settings: WatchSettings, onChanges: (changed: number) => Promise<void>, signal: AbortSignal) =>
      watchSource(ctx, settings, onChanges, signal),
    ),
    readResults: (filter) => results.readResults(filter),
    evaluationCounts: (query) => results.evaluationCounts(query),
    comparisonCounts: (query) => results.comparisonCounts(query),
    groundTruthOf: (query) => results.groundTruthOf(query),
    readErrors: (filter) => results.readErrors(filter),
    describePlan: () => describePlan(ctx),
    cleanup: step('cleanup', (options: { deleteData: boolean }) => cleanup(ctx, options)),
  };
}
