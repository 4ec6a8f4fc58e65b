/**
 * The permissions the procedure needs, asked of Resource Manager (and of the model bucket) in
 * one call by preflight, so every missing one is listed at once.
 */
/** Project permissions the procedure needs (checked in one call, every missing one listed). */
export const PROJECT_PERMISSIONS = [
  'bigquery.datasets.create',
  'bigquery.datasets.get',
  'bigquery.connections.create',
  'bigquery.connections.get',
  'bigquery.connections.delegate',
  'bigquery.tables.create',
  'bigquery.tables.get',
  'bigquery.tables.update',
  'bigquery.tables.updateData',
  'bigquery.tables.getData',
  'bigquery.jobs.create',
  'bigquery.models.create',
  'bigquery.models.getData',
  'bigquery.models.updateData',
  'bigquery.models.updateMetadata',
  // searchAllAssignments, which preflight reads the project's capacity with.
  'bigquery.reservationAssignments.search',
];

/** Storage permissions: granted on the project, or on the model bucket when it exists (bucket-level roles). */
export const STORAGE_PERMISSIONS = [
  'storage.buckets.create',
  'storage.buckets.get',
  'storage.buckets.getIamPolicy',
  'storage.buckets.setIamPolicy',
  'storage.objects.create',
  'storage.objects.get',
  'storage.objects.list',
];

/** Needed only when the config asks objinfer to make a reservation. */
export const RESERVATION_PERMISSIONS = ['bigquery.reservations.create', 'bigquery.reservations.get', 'bigquery.reservationAssignments.create'];
