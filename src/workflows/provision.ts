/**
 * The provision stage: dataset, reservation, connection, bucket, grant, model upload, object
 * table, model import, its description and the results tables. Each step starts as soon as
 * the steps it needs are done (a no-op run is then 8 round trips to the server instead of 11);
 * runs begun before that change keep the one-after-another order on replay.
 */
import { patched } from '@temporalio/workflow';
import type { RunSpec } from '../config';
import type { ModelArtifact, ModelDescription, PipelineRef, StepOutcome } from './contract';
import type { stepsFor } from './steps';

/** The patch that let independent provisioning steps run at the same time. */
export const PARALLEL_PROVISIONING = 'provision-in-parallel';

export interface ProvisionDeps {
  spec: RunSpec;
  ref: PipelineRef;
  steps: ReturnType<typeof stepsFor>;
  /** Runs a step that reads through the connection, waiting out IAM propagation. */
  waitingOutIam<T>(step: string, work: () => Promise<T>): Promise<T>;
}

export interface Provisioned {
  /** Every step's outcome, in the order the steps are listed above, whatever order they ended in. */
  outcomes: (StepOutcome | StepOutcome[])[];
  artifact: ModelArtifact;
  model: ModelDescription;
}

const summary = (text: string) => ({ summary: text });

export async function provision(deps: ProvisionDeps): Promise<Provisioned> {
  return patched(PARALLEL_PROVISIONING) ? provisionInParallel(deps) : provisionInOrder(deps);
}

async function provisionInParallel({ spec, ref, steps, waitingOutIam }: ProvisionDeps): Promise<Provisioned> {
  const { provisioning, throughConnection } = steps;
  // Every other step records what it creates in the dataset (gcp), so the dataset comes first.
  const dataset = provisioning.ensureDataset.executeWithOptions(summary(`provision: dataset ${spec.dataset}`), [ref]);
  const reservation = spec.reservation
    ? dataset.then(() => provisioning.ensureReservation.executeWithOptions(summary(`provision: reservation ${spec.reservation!.name}`), [ref]))
    : undefined;
  const connection = dataset.then(() => provisioning.ensureConnection.executeWithOptions(summary(`provision: connection ${spec.connection}`), [ref]));
  const bucket = dataset.then(() => provisioning.ensureBucket.executeWithOptions(summary(`provision: bucket ${spec.bucket}`), [ref]));
  const grant = Promise.all([connection, bucket]).then(([c]) =>
    provisioning.grantObjectViewer.executeWithOptions(summary('provision: grant roles/storage.objectViewer'), [ref, c.serviceAccount]),
  );
  const upload = bucket.then(() => provisioning.uploadModel.executeWithOptions(summary(`provision: upload model ${spec.model.name}`), [ref]));
  const objectTable = Promise.all([dataset, reservation, grant]).then(() =>
    waitingOutIam('object table', () => throughConnection.ensureObjectTable.executeWithOptions(summary(`provision: object table ${spec.objectTable}`), [ref])),
  );
  const imported = Promise.all([dataset, upload]).then(([, artifact]) =>
    provisioning.ensureModel.executeWithOptions(summary(`provision: model ${spec.model.name} (version ${artifact.version})`), [ref, artifact]),
  );
  const model = Promise.all([objectTable, imported, upload]).then(([, , artifact]) =>
    waitingOutIam('describe model', () =>
      throughConnection.describeModel.executeWithOptions(summary(`provision: describe model ${spec.model.name}`), [ref, artifact]),
    ),
  );
  const tables = model.then((m) =>
    provisioning.ensureResultTables.executeWithOptions(summary(`provision: tables ${spec.results.table}, ${spec.results.errorsTable}`), [ref, m]),
  );
  const [d, r, c, b, g, u, o, i, m, t] = await Promise.all([dataset, reservation, connection, bucket, grant, upload, objectTable, imported, model, tables]);
  return { outcomes: [d, ...(r ? [r] : []), c, b, g, u, o, i, t], artifact: u, model: m };
}

/** The order of runs begun before PARALLEL_PROVISIONING: each step after the one before. */
async function provisionInOrder({ spec, ref, steps, waitingOutIam }: ProvisionDeps): Promise<Provisioned> {
  const { provisioning, throughConnection } = steps;
  const outcomes: (StepOutcome | StepOutcome[])[] = [];
  const record = <T extends StepOutcome | StepOutcome[]>(outcome: T): T => (outcomes.push(outcome), outcome);
  record(await provisioning.ensureDataset.executeWithOptions(summary(`provision: dataset ${spec.dataset}`), [ref]));
  if (spec.reservation) record(await provisioning.ensureReservation.executeWithOptions(summary(`provision: reservation ${spec.reservation.name}`), [ref]));
  const connection = record(await provisioning.ensureConnection.executeWithOptions(summary(`provision: connection ${spec.connection}`), [ref]));
  record(await provisioning.ensureBucket.executeWithOptions(summary(`provision: bucket ${spec.bucket}`), [ref]));
  record(await provisioning.grantObjectViewer.executeWithOptions(summary('provision: grant roles/storage.objectViewer'), [ref, connection.serviceAccount]));
  const artifact = record(await provisioning.uploadModel.executeWithOptions(summary(`provision: upload model ${spec.model.name}`), [ref]));
  record(
    await waitingOutIam('object table', () =>
      throughConnection.ensureObjectTable.executeWithOptions(summary(`provision: object table ${spec.objectTable}`), [ref]),
    ),
  );
  record(await provisioning.ensureModel.executeWithOptions(summary(`provision: model ${spec.model.name} (version ${artifact.version})`), [ref, artifact]));
  const model = await waitingOutIam('describe model', () =>
    throughConnection.describeModel.executeWithOptions(summary(`provision: describe model ${spec.model.name}`), [ref, artifact]),
  );
  record(
    await provisioning.ensureResultTables.executeWithOptions(summary(`provision: tables ${spec.results.table}, ${spec.results.errorsTable}`), [ref, model]),
  );
  return { outcomes, artifact, model };
}
