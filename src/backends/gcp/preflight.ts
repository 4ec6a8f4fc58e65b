/**
 * Before anything is created: the caller's permissions (every missing one listed) and the
 * capacity that object-table inference needs.
 */
import { ErrorType, ObjinferError } from '../../errors';
import type { PreflightReport } from '../../workflows/contract';
import type { GcpContext } from './context';
import { PROJECT_PERMISSIONS, RESERVATION_PERMISSIONS, STORAGE_PERMISSIONS } from './permissions';
import { checkCapacity } from './reservation';

export async function preflight(ctx: GcpContext): Promise<PreflightReport> {
  const { spec } = ctx;
  const { projects, storage } = ctx.clients;
  const asked = [...PROJECT_PERMISSIONS, ...STORAGE_PERMISSIONS, ...(spec.reservation ? RESERVATION_PERMISSIONS : [])];
  const [response] = await ctx.call('check your permissions (Resource Manager testIamPermissions)', () =>
    projects.testIamPermissions({ resource: `projects/${spec.project}`, permissions: asked }),
  );
  const granted = new Set(response.permissions ?? []);
  let missing = asked.filter((p) => !granted.has(p));
  const storageMissing = missing.filter((p) => p.startsWith('storage.') && p !== 'storage.buckets.create');
  if (storageMissing.length > 0) {
    // Bucket-level roles do not show on the project: ask the bucket itself, when it is there.
    const bucket = storage.bucket(spec.bucket);
    const [exists] = await ctx.call(`bucket ${spec.bucket}`, () => bucket.exists());
    if (exists) {
      const [onBucket] = await ctx.call(`check your permissions on gs://${spec.bucket}`, () => bucket.iam.testPermissions(storageMissing));
      missing = missing.filter((p) => p === 'storage.buckets.create' || !onBucket[p]);
      missing = missing.filter((p) => p !== 'storage.buckets.create'); // the bucket exists: nothing to create
    }
  }
  if (missing.length > 0) {
    throw new ObjinferError(
      ErrorType.PermissionDenied,
      `you lack ${missing.length} permission(s) on project ${spec.project}: ${missing.join(', ')}. ` +
        'Grant them (e.g. roles/bigquery.admin and roles/storage.admin, or roles/storage.admin on the bucket) and run again; nothing was changed',
    );
  }
  // With "reservation" configured, objinfer makes the capacity itself (ensureReservation).
  const warnings = spec.reservation ? [] : await checkCapacity(ctx);
  return { warnings };
}
