/**
 * The local stand-in for a BigQuery connection and bucket IAM. A connection has a
 * service account; reading objects through it needs roles/storage.objectViewer on
 * their bucket (a folder here). Like real IAM, a fresh grant takes a while to
 * propagate: `simulatedPropagationDelayMs` after a grant, reads fail with the same
 * retryable error the gcp backend raises for Google's propagation messages.
 */
import { createHash } from 'node:crypto';
import { ErrorType, ObjinferError } from '../../errors';
import { OBJECT_VIEWER } from '../common/iam';
import type { Db } from './warehouse';

export function localServiceAccount(project: string, location: string, connection: string): string {
  const id = createHash('sha256').update(`${project}/${location}/${connection}`).digest('hex').slice(0, 12);
  return `bqcx-${id}@objinfer-local.iam.gserviceaccount.com`;
}

export async function findGrant(db: Db, bucket: string, serviceAccount: string): Promise<Date | undefined> {
  const row = await db.one<{ granted_at: Date }>('SELECT granted_at FROM _objinfer.grants WHERE bucket = $1 AND member = $2 AND role = $3', [
    bucket,
    `serviceAccount:${serviceAccount}`,
    OBJECT_VIEWER,
  ]);
  return row?.granted_at;
}

/** Throws the error a read through the connection would meet, or returns when it may read. */
export async function assertConnectionCanRead(
  db: Db,
  bucket: string,
  serviceAccount: string,
  simulatedPropagationDelayMs: number,
  warehouse: string,
  now = new Date(),
): Promise<void> {
  const grantedAt = await findGrant(db, bucket, serviceAccount);
  if (!grantedAt && !(await db.one('SELECT 1 FROM _objinfer.connections WHERE service_account = $1', [serviceAccount]))) {
    // No connection at all: the warehouse that held it is gone (deleted, or replaced by a new file).
    throw new ObjinferError(
      ErrorType.NotFound,
      `the warehouse ${warehouse} no longer holds this pipeline's connection: it was deleted or replaced while the run went on; ` +
        'run again to provision it anew (predictions written to the old file are not in the new one)',
    );
  }
  if (!grantedAt) {
    throw new ObjinferError(
      ErrorType.PermissionDenied,
      `Access Denied: ${serviceAccount} does not have storage.objects.get access to ${bucket}. ` +
        `Grant it ${OBJECT_VIEWER} on that bucket (objinfer grants it on buckets it provisions).`,
    );
  }
  const age = now.getTime() - grantedAt.getTime();
  if (age < simulatedPropagationDelayMs) {
    throw new ObjinferError(
      ErrorType.IamPropagationPending,
      `Permission denied while globbing file pattern. ${serviceAccount} does not have storage.objects.list ` +
        `access to the Google Cloud Storage bucket ${bucket} (the grant is ${Math.round(age / 1000)}s old; ` +
        `IAM changes take time to propagate).`,
    );
  }
}
