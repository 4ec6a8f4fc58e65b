/**
 * The local backend: the whole procedure on one machine, offline. The dataset is a DuckDB
 * schema, the bucket a folder, the connection and its grants rows in the warehouse, the
 * object table a listing of file:// patterns, and the model an ONNX file run by ONNX
 * Runtime, with images decoded and resized as BigQuery does (src/images).
 *
 * Same shape as ../gcp: provision, objectTable, predict, results, plan, cleanup.
 */
import type { RunSpec } from '../../config';
import type { Backend } from '../port';
import { cleanup } from './cleanup';
import { LocalContext } from './context';
import { ensureObjectTable } from './objectTable';
import { describePlan } from './plan';
import { planBatches, predictBatch, recordUnprocessable } from './predict';
import * as provision from './provision';
import { LocalResults } from './results';

export function createLocalBackend(spec: RunSpec): Backend {
  const ctx = new LocalContext(spec);
  const results = new LocalResults(spec);
  return {
    preflight: () => provision.preflight(ctx),
    ensureDataset: () => provision.ensureDataset(ctx),
    ensureReservation: async () => [], // reservations are a BigQuery matter
    ensureConnection: () => provision.ensureConnection(ctx),
    ensureBucket: () => provision.ensureBucket(ctx),
    grantObjectViewer: (serviceAccount) => provision.grantObjectViewer(ctx, serviceAccount),
    uploadModel: () => provision.uploadModel(ctx),
    ensureObjectTable: () => ensureObjectTable(ctx),
    ensureModel: (artifact) => provision.ensureModel(ctx, artifact),
    describeModel: (artifact) => provision.describeModel(ctx, artifact),
    ensureResultTables: (model) => provision.ensureResultTables(ctx, model),
    planBatches: (version) => planBatches(ctx, version),
    predictBatch: (request, onProgress, signal) => predictBatch(ctx, request, onProgress, signal),
    recordUnprocessable: (request, reason) => recordUnprocessable(ctx, request, reason),
    readResults: (filter) => results.readResults(filter),
    readErrors: (filter) => results.readErrors(filter),
    describePlan: () => describePlan(ctx),
    cleanup: (options) => cleanup(ctx, options),
  };
}

/** The read side alone (the CLI's `results`, `report` and `export`). */
export function openLocalResults(spec: RunSpec): LocalResults {
  return new LocalResults(spec);
}
