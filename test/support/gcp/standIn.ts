/**
 * The Google APIs that cannot run here and that no emulator covers: the BigQuery
 * Connection API, the Reservation API, Resource Manager's testIamPermissions, Cloud
 * Storage bucket IAM, and BigQuery's models (whose columns are read from the model's files by
 * its own engine: importedModel.ts). Each handler answers in the shapes of the
 * discovery documents (the gateway checks every answer against them) and fails like Google:
 * JSON errors with an HTTP status and a gRPC status name, which the gax clients turn into
 * gRPC codes; a reservation that still has an assignment cannot be deleted.
 */
import type { Row } from './types';

export interface StandInOptions {
  project: string;
  missingPermissions?: string[];
  /** Permissions granted on the bucket itself (bucket-level roles), not on the project. */
  bucketOnlyPermissions?: string[];
  /** Buckets the caller has no rights on (readable by all, like the tutorial's sample data). */
  foreignBuckets?: string[];
  /** Buckets the caller has no rights on that are not public either: the connection can never read them. */
  privateBuckets?: string[];
  /** After a grant, reads through the connection fail with Google's propagation 403 this long. */
  propagationMs?: number;
  /** After a grant, this many reads through the connection fail with Google's propagation 403 (however long they take to come). */
  propagationReads?: number;
  /** The first PUT of a bucket policy meets a concurrent change (412) by "someone else". */
  concurrentPolicyChange?: boolean;
  /** The project already has a QUERY assignment to this reservation (name). */
  existingAssignment?: string;
  /** That assignment's state (default ACTIVE), its reservation's edition (default ENTERPRISE) and slots (default 100). */
  existingAssignmentState?: string;
  existingEdition?: string;
  existingSlots?: string;
  /** The organisation (organizations/1234) has a QUERY assignment to this reservation of an admin project. */
  inheritedAssignment?: string;
  /** Resource Manager's API is switched off in the project. */
  resourceManagerDisabled?: boolean;
  /** The Connection API refuses to create connections with this (HTTP status, gRPC status name, message). */
  refuseConnectionCreate?: [number, string, string];
}

export type Answer = [status: number, body: unknown];

export const googleError = (code: number, status: string, message: string): Answer => [
  code,
  { error: { code, status, message, errors: [{ reason: status === 'NOT_FOUND' ? 'notFound' : status.toLowerCase(), message, domain: 'global' }] } },
];

interface Policy {
  bindings: { role: string; members: string[] }[];
  version: number;
}

export interface Model {
  modelType: string;
  labels: Record<string, string>;
  path: string;
  /** Read from the model's files by its own engine (importedModel.ts), as BigQuery reads them at import. */
  feature: string;
  outputs: string[];
  /** A SavedModel's folder here, which the shim's ML.PREDICT runs with TensorFlow. */
  dir?: string;
}

export class StandIn {
  readonly connections = new Map<string, { serviceAccountId: string; created: number }>();
  readonly policies = new Map<string, Policy>();
  readonly reservations = new Map<string, Row>();
  readonly assignments = new Map<string, Row>();
  readonly models = new Map<string, Model>();
  readonly grantedAt = new Map<string, number>();
  private readsRefused = 0;
  private concurrentChangeDone = false;

  constructor(readonly options: StandInOptions) {
    if (options.existingAssignment) {
      const reservation = `projects/${options.project}/locations/US/reservations/${options.existingAssignment}`;
      this.reservations.set(reservation, {
        name: reservation,
        slotCapacity: options.existingSlots ?? '100',
        edition: options.existingEdition ?? 'ENTERPRISE',
        ignoreIdleSlots: false,
      });
      this.assignments.set(`${reservation}/assignments/1`, {
        name: `${reservation}/assignments/1`,
        assignee: `projects/${options.project}`,
        jobType: 'QUERY',
        state: options.existingAssignmentState ?? 'ACTIVE',
      });
    }
    if (options.inheritedAssignment) {
      const reservation = `projects/admin-project/locations/US/reservations/${options.inheritedAssignment}`;
      this.reservations.set(reservation, { name: reservation, slotCapacity: '500', edition: 'ENTERPRISE_PLUS', ignoreIdleSlots: false });
      this.assignments.set(`${reservation}/assignments/7`, {
        name: `${reservation}/assignments/7`,
        assignee: 'organizations/1234',
        jobType: 'QUERY',
        state: 'ACTIVE',
      });
    }
  }

  // ---- Connection API ----

  getConnection(name: string): Answer {
    const connection = this.connections.get(name);
    if (!connection) return googleError(404, 'NOT_FOUND', `Not found: Connection ${name}`);
    return [
      200,
      {
        name,
        friendlyName: name.split('/').pop(),
        cloudResource: { serviceAccountId: connection.serviceAccountId },
        creationTime: String(connection.created),
        hasCredential: false,
      },
    ];
  }

  createConnection(parent: string, id: string | null, body: Row): Answer {
    if (this.options.refuseConnectionCreate) return googleError(...this.options.refuseConnectionCreate);
    if (!id) return googleError(400, 'INVALID_ARGUMENT', 'connectionId is required');
    if (!body.cloudResource) return googleError(400, 'INVALID_ARGUMENT', 'objinfer must create Cloud resource connections (connection.cloudResource)');
    const name = `${parent}/connections/${id}`;
    if (this.connections.has(name)) return googleError(409, 'ALREADY_EXISTS', `Connection ${name} already exists`);
    this.connections.set(name, { serviceAccountId: `bqcx-1234-${this.connections.size}@gcp-sa-bigquery-condel.iam.gserviceaccount.com`, created: Date.now() });
    return this.getConnection(name);
  }

  deleteConnection(name: string): Answer {
    if (!this.connections.delete(name)) return googleError(404, 'NOT_FOUND', `Not found: Connection ${name}`);
    return [200, {}];
  }

  /** The connection's service account, from its `project.location.id` reference. */
  serviceAccountOf(reference: string): string | undefined {
    const [project, location, id] = reference.split('.');
    return this.connections.get(`projects/${project}/locations/${location}/connections/${id}`)?.serviceAccountId;
  }

  // ---- Resource Manager ----

  testProjectPermissions(body: Row): Answer {
    if (this.options.resourceManagerDisabled) {
      return googleError(
        403,
        'PERMISSION_DENIED',
        `Cloud Resource Manager API has not been used in project ${this.options.project} before or it is disabled. Enable it by visiting https://console.developers.google.com/apis/api/cloudresourcemanager.googleapis.com/overview?project=${this.options.project} then retry.`,
      );
    }
    const asked = (body.permissions as string[]) ?? [];
    const held = (p: string) => !this.options.missingPermissions?.includes(p) && !this.options.bucketOnlyPermissions?.includes(p);
    return [200, { permissions: asked.filter(held) }];
  }

  // ---- Reservation API ----

  /**
   * searchAllAssignments as documented: for a project, the assignments created on the project
   * if there are any, else those of its closest ancestor (here the organisation, organizations/1234).
   */
  searchAssignments(query: string | null): Answer {
    const assignee = query?.match(/^assignee=(.+)$/)?.[1];
    const all = [...this.assignments.values()];
    const own = all.filter((a) => !assignee || a.assignee === assignee);
    return [200, { assignments: own.length > 0 ? own : all.filter((a) => a.assignee === 'organizations/1234') }];
  }

  getReservation(name: string): Answer {
    const reservation = this.reservations.get(name);
    if (!reservation) return googleError(404, 'NOT_FOUND', `Not found: Reservation ${name}`);
    return [200, reservation];
  }

  createReservation(parent: string, id: string | null, body: Row): Answer {
    if (!id || !body.edition) return googleError(400, 'INVALID_ARGUMENT', 'reservationId and reservation.edition are required');
    const name = `${parent}/reservations/${id}`;
    if (this.reservations.has(name)) return googleError(409, 'ALREADY_EXISTS', `Reservation ${name} already exists`);
    this.reservations.set(name, { ...body, name });
    return [200, this.reservations.get(name)];
  }

  deleteReservation(name: string): Answer {
    if (!this.reservations.has(name)) return googleError(404, 'NOT_FOUND', `Not found: Reservation ${name}`);
    if ([...this.assignments.keys()].some((a) => a.startsWith(`${name}/assignments/`))) {
      return googleError(400, 'FAILED_PRECONDITION', `Reservation ${name} has assignments; delete them first`);
    }
    this.reservations.delete(name);
    return [200, {}];
  }

  listAssignments(reservation: string): Answer {
    return [200, { assignments: [...this.assignments.values()].filter((a) => String(a.name).startsWith(`${reservation}/`)) }];
  }

  createAssignment(reservation: string, body: Row): Answer {
    if (!this.reservations.has(reservation)) return googleError(404, 'NOT_FOUND', `Not found: Reservation ${reservation}`);
    if (!body.assignee || !body.jobType) return googleError(400, 'INVALID_ARGUMENT', 'assignee and jobType are required');
    const clash = [...this.assignments.values()].find((a) => a.assignee === body.assignee && a.jobType === body.jobType);
    if (clash) return googleError(409, 'ALREADY_EXISTS', `${body.assignee} already has a ${body.jobType} assignment: ${clash.name}`);
    const name = `${reservation}/assignments/${this.assignments.size + 1}`;
    this.assignments.set(name, { name, assignee: body.assignee, jobType: body.jobType, state: 'ACTIVE' });
    return [200, this.assignments.get(name)];
  }

  deleteAssignment(name: string): Answer {
    if (!this.assignments.delete(name)) return googleError(404, 'NOT_FOUND', `Not found: Assignment ${name}`);
    return [200, {}];
  }

  // ---- bucket IAM ----

  private policy(bucket: string): Policy {
    const policy = this.policies.get(bucket) ?? { bindings: [{ role: 'roles/storage.legacyBucketOwner', members: ['projectOwner:p'] }], version: 1 };
    this.policies.set(bucket, policy);
    return policy;
  }

  private policyResource(bucket: string, policy: Policy) {
    return {
      kind: 'storage#policy',
      resourceId: `projects/_/buckets/${bucket}`,
      version: 1,
      etag: Buffer.from(`etag-${policy.version}`).toString('base64'),
      bindings: policy.bindings,
    };
  }

  getPolicy(bucket: string): Answer {
    if (this.isForeign(bucket)) return googleError(403, 'PERMISSION_DENIED', `caller does not have storage.buckets.getIamPolicy access to ${bucket}`);
    return [200, this.policyResource(bucket, this.policy(bucket))];
  }

  setPolicy(bucket: string, body: Row): Answer {
    if (this.isForeign(bucket)) return googleError(403, 'PERMISSION_DENIED', `caller does not have storage.buckets.setIamPolicy access to ${bucket}`);
    const current = this.policy(bucket);
    if (this.options.concurrentPolicyChange && !this.concurrentChangeDone) {
      this.concurrentChangeDone = true; // someone else wins the race: their binding must survive ours
      current.bindings.push({ role: 'roles/storage.objectAdmin', members: ['user:someone-else@example.com'] });
      current.version++;
    }
    if (body.etag !== this.policyResource(bucket, current).etag)
      return googleError(412, 'FAILED_PRECONDITION', 'Precondition Failed: the policy changed since it was read');
    const before = new Set(current.bindings.flatMap((b) => b.members.map((m) => `${b.role} ${m}`)));
    current.bindings = ((body.bindings as { role: string; members: string[] }[]) ?? []).map((b) => ({ role: b.role, members: b.members }));
    current.version++;
    for (const b of current.bindings) for (const m of b.members) if (!before.has(`${b.role} ${m}`)) this.grantedAt.set(`${bucket} ${m}`, Date.now());
    return [200, this.policyResource(bucket, current)];
  }

  testBucketPermissions(bucket: string, asked: string[]): Answer {
    const foreign = this.isForeign(bucket);
    const denied = (p: string) => foreign || (this.options.missingPermissions?.includes(p) ?? false);
    return [200, { kind: 'storage#testIamPermissionsResponse', permissions: asked.filter((p) => !denied(p)) }];
  }

  /**
   * What reading `bucket` through the connection's service account meets now: nothing
   * (allowed), or Google's propagation message while a grant is missing or fresh.
   */
  readThroughConnection(bucket: string, serviceAccount: string | undefined): string | undefined {
    if (this.options.foreignBuckets?.includes(bucket)) return undefined; // public sample data
    if (this.options.privateBuckets?.includes(bucket)) return this.cannotRead(serviceAccount); // nobody granted it: never
    const member = `serviceAccount:${serviceAccount}`;
    const granted = this.policies.get(bucket)?.bindings.some((b) => b.role === 'roles/storage.objectViewer' && b.members.includes(member));
    const age = Date.now() - (this.grantedAt.get(`${bucket} ${member}`) ?? 0);
    const settled = age >= (this.options.propagationMs ?? 0) && this.readsRefused >= (this.options.propagationReads ?? 0);
    if (granted && settled) return undefined;
    if (granted) this.readsRefused++;
    return this.cannotRead(serviceAccount);
  }

  /** Whether the caller has no rights on the bucket (public or not). */
  isForeign(bucket: string): boolean {
    return Boolean(this.options.foreignBuckets?.includes(bucket) || this.options.privateBuckets?.includes(bucket));
  }

  private cannotRead(serviceAccount: string | undefined): string {
    return (
      `Permission denied while globbing file pattern. ${serviceAccount} does not have storage.objects.list access to the Google Cloud Storage bucket. ` +
      "Permission 'storage.objects.list' denied on resource (or it may not exist)."
    );
  }

  // ---- BigQuery models (the emulator has none) ----

  modelResource(project: string, dataset: string, id: string): Answer {
    const model = this.models.get(`${project}.${dataset}.${id}`);
    if (!model) return googleError(404, 'NOT_FOUND', `Not found: Model ${project}:${dataset}.${id}`);
    return [
      200,
      {
        etag: `etag-${Object.keys(model.labels).length}`,
        modelReference: { projectId: project, datasetId: dataset, modelId: id },
        modelType: model.modelType,
        location: 'US',
        creationTime: '1700000000000',
        lastModifiedTime: '1700000000000',
        labels: model.labels,
        featureColumns: [{ name: model.feature, type: { typeKind: 'ARRAY', arrayElementType: { typeKind: 'FLOAT64' } } }],
        labelColumns: model.outputs.map((name) => ({ name, type: { typeKind: 'ARRAY', arrayElementType: { typeKind: 'FLOAT64' } } })),
      },
    ];
  }

  patchModel(project: string, dataset: string, id: string, body: Row): Answer {
    const model = this.models.get(`${project}.${dataset}.${id}`);
    if (!model) return googleError(404, 'NOT_FOUND', `Not found: Model ${project}:${dataset}.${id}`);
    if (body.labels) model.labels = { ...(body.labels as Record<string, string>) };
    return this.modelResource(project, dataset, id);
  }

  deleteModel(project: string, dataset: string, id: string): Answer {
    if (!this.models.delete(`${project}.${dataset}.${id}`)) return googleError(404, 'NOT_FOUND', `Not found: Model ${project}:${dataset}.${id}`);
    return [204, undefined];
  }
}
