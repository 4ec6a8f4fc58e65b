/** The model bucket, and the connection's read grant on it and on the image buckets the user owns. */
import type { StepOutcome } from '../../workflows/contract';
import { OBJECT_VIEWER } from '../common/iam';
import { ErrorType, ObjinferError } from '../../errors';
import type { GcpContext } from './context';
import { describeGoogleError } from './errors';

export function bucketOf(uri: string): string {
  return uri.replace(/^gs:\/\//, '').split('/')[0]!;
}

export async function ensureBucket(ctx: GcpContext): Promise<StepOutcome> {
  const { bucket, location } = ctx.spec;
  return ctx.call(`bucket ${bucket}`, async () => {
    const handle = ctx.clients.storage.bucket(bucket);
    const [exists] = await handle.exists();
    if (exists) {
      const [allowed] = await handle.iam.testPermissions(['storage.objects.create', 'storage.objects.get']);
      if (!Object.values(allowed).every(Boolean)) {
        throw new ObjinferError(
          ErrorType.ResourceConflict,
          `bucket ${bucket} exists but you cannot write to it (bucket names are global: it may belong to someone else); choose another bucket name`,
        );
      }
      return { step: 'bucket', action: 'exists', detail: `gs://${bucket}` };
    }
    try {
      await ctx.clients.storage.createBucket(bucket, { location });
    } catch (error) {
      if (describeGoogleError(error).kind === 'conflict') {
        throw new ObjinferError(ErrorType.ResourceConflict, `bucket ${bucket} belongs to another project; choose another bucket name`);
      }
      throw error;
    }
    await ctx.record('bucket', bucket);
    return { step: 'bucket', action: 'created', detail: `gs://${bucket}` };
  });
}

/**
 * Whether anyone may list the bucket (allUsers can read it, as the tutorial's
 * cloud-samples-data): asked without credentials, so the caller's own rights do not count.
 */
export async function isPublic(ctx: GcpContext, bucket: string): Promise<boolean> {
  const response = await fetch(`${ctx.storageRoot}/storage/v1/b/${encodeURIComponent(bucket)}/o?maxResults=1&fields=kind`).catch(() => undefined);
  return response?.ok ?? false;
}

/**
 * Image buckets the connection's service account can be given no read right on: neither
 * the user's to grant on nor public. A "cannot read" there never propagates away.
 */
export async function unreachableBuckets(ctx: GcpContext): Promise<string[]> {
  const unreachable: string[] = [];
  for (const bucket of new Set(ctx.spec.sourceUris.map(bucketOf))) {
    if (bucket === ctx.spec.bucket || (await owns(ctx, bucket)) || (await isPublic(ctx, bucket))) continue;
    unreachable.push(bucket);
  }
  return unreachable;
}

/** Whether the caller may change the bucket's IAM policy: "the user owns it". */
async function owns(ctx: GcpContext, bucket: string): Promise<boolean> {
  const [allowed] = await ctx.clients.storage.bucket(bucket).iam.testPermissions(['storage.buckets.getIamPolicy', 'storage.buckets.setIamPolicy']);
  return Object.values(allowed).every(Boolean);
}

/**
 * roles/storage.objectViewer for the connection's service account on the model bucket and
 * on the image buckets the user owns: read-modify-write with the policy's etag, retried
 * when someone else changed it meanwhile; no duplicate binding; nothing else touched.
 */
export async function grantObjectViewer(ctx: GcpContext, serviceAccount: string): Promise<StepOutcome[]> {
  const member = `serviceAccount:${serviceAccount}`;
  const buckets = [...new Set([ctx.spec.bucket, ...ctx.spec.sourceUris.map(bucketOf)])];
  const outcomes: StepOutcome[] = [];
  for (const bucket of buckets) {
    outcomes.push(
      await ctx.call(`grant on gs://${bucket}`, async (): Promise<StepOutcome> => {
        const detail = `${OBJECT_VIEWER} for ${member} on gs://${bucket}`;
        if (!(await owns(ctx, bucket))) {
          return { step: 'grant', action: 'skipped', detail: `${detail}: not yours to change (e.g. public sample data); its objects must already be readable` };
        }
        const added = await changeBinding(ctx, bucket, member, 'add');
        if (added) await ctx.record('grant', `${bucket} ${member}`);
        return { step: 'grant', action: added ? 'created' : 'exists', detail };
      }),
    );
  }
  return outcomes;
}

/** Adds or removes the member's objectViewer binding; false when there was nothing to do. */
export async function changeBinding(ctx: GcpContext, bucket: string, member: string, change: 'add' | 'remove'): Promise<boolean> {
  const iam = ctx.clients.storage.bucket(bucket).iam;
  for (let attempt = 1; ; attempt++) {
    const [policy] = await iam.getPolicy({ requestedPolicyVersion: 3 });
    const bindings = policy.bindings ?? [];
    const binding = bindings.find((b) => b.role === OBJECT_VIEWER && !b.condition);
    const has = binding?.members?.includes(member) ?? false;
    if (has === (change === 'add')) return false;
    if (change === 'add') {
      if (binding) binding.members = [...(binding.members ?? []), member];
      else bindings.push({ role: OBJECT_VIEWER, members: [member] });
    } else {
      binding!.members = binding!.members!.filter((m) => m !== member);
    }
    try {
      await iam.setPolicy({ ...policy, bindings: bindings.filter((b) => (b.members ?? []).length > 0) });
      return true;
    } catch (error) {
      if (describeGoogleError(error).code !== 412 || attempt >= 5) throw error; // 412: changed since we read it
    }
  }
}
