/** The one role objinfer grants: to the connection's service account, on buckets it reads. */
export const OBJECT_VIEWER = 'roles/storage.objectViewer';
