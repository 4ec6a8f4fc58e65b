/**
 * The gcp backend: the tutorial's procedure against BigQuery, Cloud Storage, the BigQuery
 * Connection API, bucket IAM and (optionally) the Reservation API, with the official
 * clients and Application Default Credentials.
 *
 * Same shape as ../local: one file per resource (dataset, reservation, connection, bucket,
 * model, tables, objectTable), then predict, results, plan, cleanup.
 */
import type { RunSpec } from '../../config';
import type { Backend } from '../port';
import { ErrorType, ObjinferError } from '../../errors';
import { createGcpClients, type GcpEndpoints } from './clients';
import { cleanup } from './cleanup';
import { GcpContext } from './context';
import { ensureObjectTable } from './objectTable';
import { describePlan } from './plan';
import { planBatches, predictBatch, recordUnprocessable } from './predict';
import { ensureBucket, grantObjectViewer } from './bucket';
import { ensureConnection } from './connection';
import { ensureDataset } from './dataset';
import { describeModel, ensureModel, uploadModel } from './model';
import { preflight } from './preflight';
import { ensureReservation } from './reservation';
import { ensureResultTables } from './tables';
import { GcpResults } from './results';

export type { GcpEndpoints } from './clients';

export function createGcpBackend(spec: RunSpec, endpoints?: GcpEndpoints): Backend {
  const ctx = new GcpContext(spec, endpoints);
  const results = new GcpResults(spec, ctx.clients);
  return {
    preflight: () => preflight(ctx),
    ensureDataset: () => ensureDataset(ctx),
    ensureReservation: () => ensureReservation(ctx),
    ensureConnection: () => ensureConnection(ctx),
    ensureBucket: () => ensureBucket(ctx),
    grantObjectViewer: (serviceAccount) => grantObjectViewer(ctx, serviceAccount),
    uploadModel: () => uploadModel(ctx),
    ensureObjectTable: (stepKey) => ensureObjectTable(ctx, stepKey),
    ensureModel: (artifact) => ensureModel(ctx, artifact),
    describeModel: (artifact) => describeModel(ctx, artifact),
    ensureResultTables: (model) => ensureResultTables(ctx, model),
    planBatches: (version, runId) => planBatches(ctx, version, runId),
    predictBatch: (request, onProgress, signal) => predictBatch(ctx, request, onProgress, signal),
    recordUnprocessable: (request, reason) => recordUnprocessable(ctx, request, reason),
    watchSource: async () => {
      throw new ObjinferError(
        ErrorType.InvalidConfig,
        'objinfer watch is not built for the gcp backend yet (Cloud Storage notifications through Pub/Sub); ' +
          'keep a results table fresh with `objinfer schedule create --config <file> --every 10m`, or watch with backend: local',
      );
    },
    readResults: (filter) => results.readResults(filter),
    evaluationCounts: (query) => results.evaluationCounts(query),
    comparisonCounts: (query) => results.comparisonCounts(query),
    groundTruthOf: (query) => results.groundTruthOf(query),
    readErrors: (filter) => results.readErrors(filter),
    describePlan: () => describePlan(ctx),
    cleanup: (options) => cleanup(ctx, options),
    close: async () => {
      await Promise.all([ctx.clients.connections.close(), ctx.clients.projects.close(), ctx.clients.reservations.close()]);
    },
  };
}

/** The read side alone (the CLI's `results`, `report` and `export`): BigQuery, and Cloud Storage for thumbnails. */
export function openGcpResults(spec: RunSpec, endpoints?: GcpEndpoints): GcpResults {
  return new GcpResults(spec, createGcpClients(spec, endpoints)); // each client is made on first use
}
