/**
 * How Google's errors map onto objinfer's failure types, so that retry policies treat IAM
 * propagation and passing trouble as "wait and retry" and everything else as "fix this
 * first". Three shapes arrive: HTTP statuses from the BigQuery and Storage clients, gRPC
 * codes from the gax clients (Connection, Reservation, Resource Manager; their REST
 * transport maps statuses to gRPC codes), and failed jobs with a `reason`.
 */
import { ErrorType, ObjinferError } from '../../errors';

/**
 * Messages Google returns while a new grant or a new connection's service account is
 * still propagating. They look like permission errors but go away by themselves.
 */
const PROPAGATION_MESSAGES = [
  /Permission denied while globbing file pattern/i,
  /does not have storage\.objects\.(list|get) access/i,
  /Service account .* does not exist/i,
];

/**
 * Contention BigQuery documents for DML on one table (docs "Transform data with DML",
 * concurrent jobs): a full queue of mutating statements, a statement queued past its 6 hours,
 * a conflicting concurrent update. The queue drains and the other statement ends, so a later
 * attempt passes; halving the batch would only add statements to the same queue.
 */
const DML_CONTENTION = [
  /Too many DML statements outstanding against table/i,
  /DML statement has been queued for too long/i,
  /Could not serialize access to table .* due to concurrent update/i,
];

/** An API switched off in the project: only the user can turn it on. */
const API_DISABLED = /has not been used in project|is disabled|SERVICE_DISABLED|accessNotConfigured/i;

/**
 * BigQuery's analyser refusing a statement of a job (`… at [line:column]`, reason invalidQuery),
 * which arrives as the job's errorResult when it is not the script's first statement: the
 * statement is at fault, not an object it reads, so splitting the batch cannot help.
 */
export function isStatementRefusal(error: { reason?: string; message: string }): boolean {
  return error.reason === 'invalidQuery' && / at \[\d+:\d+\]$/.test(error.message) && !error.message.includes('gs://');
}

export function isPropagationMessage(message: string): boolean {
  return PROPAGATION_MESSAGES.some((pattern) => pattern.test(message));
}

type Kind = 'transient' | 'quota' | 'permission' | 'invalid' | 'notFound' | 'conflict' | 'refused';

/** gRPC status codes (google.rpc.Code) by what a caller should do about them. */
const GRPC: Record<number, Kind> = {
  1: 'transient', // CANCELLED
  2: 'refused', // UNKNOWN: Google's message says what happened
  3: 'invalid', // INVALID_ARGUMENT
  4: 'transient', // DEADLINE_EXCEEDED
  5: 'notFound', // NOT_FOUND
  6: 'conflict', // ALREADY_EXISTS
  7: 'permission', // PERMISSION_DENIED
  8: 'transient', // RESOURCE_EXHAUSTED
  9: 'refused', // FAILED_PRECONDITION
  10: 'transient', // ABORTED
  11: 'invalid', // OUT_OF_RANGE
  12: 'refused', // UNIMPLEMENTED
  13: 'transient', // INTERNAL
  14: 'transient', // UNAVAILABLE
  15: 'refused', // DATA_LOSS
  16: 'permission', // UNAUTHENTICATED
};

/** BigQuery's error reasons (errors[].reason and job errorResult.reason) that a later try may not meet. */
export const TRANSIENT_REASONS = new Set([
  'backendError',
  'internalError',
  'rateLimitExceeded',
  'jobBackendError',
  'jobInternalError',
  'jobRateLimitExceeded',
  'timeout',
  'tableUnavailable',
]);

/** Network failures that carry a string code: the request may not have reached Google. */
const NETWORK_CODES = /^(ECONNRESET|ECONNREFUSED|ETIMEDOUT|EAI_AGAIN|ENOTFOUND|EPIPE|ERR_STREAM_PREMATURE_CLOSE|UND_ERR_\w+)$/;

export interface GoogleErrorInfo {
  kind: Kind;
  message: string;
  /** HTTP status or gRPC code, as it came. */
  code?: number | string;
  reason?: string;
}

/** gRPC status names, as Google's JSON errors carry them in `error.status`. */
const STATUS_CODES: Record<string, number> = {
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
};

interface JsonError {
  error?: { code?: number; status?: string; message?: string; errors?: { reason?: string }[] };
}

/**
 * The REST clients' transport (gaxios) throws before gax can read the answer: the error's
 * message is Google's JSON error body. Read it, so the gRPC status name decides.
 */
function jsonBody(error: unknown): JsonError | undefined {
  const text = (error as { message?: string })?.message?.trim();
  if (!text?.startsWith('{')) return undefined;
  try {
    return JSON.parse(text) as JsonError;
  } catch {
    return undefined;
  }
}

/**
 * quotaExceeded: a quota (imports a day, DML a day, a custom quota) that a retry within
 * minutes does not lift; rateLimitExceeded is the passing kind (Google's troubleshooting page).
 */
const QUOTA_REASON = 'quotaExceeded';

export function describeGoogleError(error: unknown): GoogleErrorInfo {
  const info = describeAny(error);
  if (info.reason === QUOTA_REASON) return { ...info, kind: 'quota' };
  if (DML_CONTENTION.some((pattern) => pattern.test(info.message))) return { ...info, kind: 'transient' };
  return info;
}

/** errorResult.reason of a job that was cancelled (BigQuery's error messages: "stopped"). */
export const CANCELLED_REASON = 'stopped';

function describeAny(error: unknown): GoogleErrorInfo {
  const body = jsonBody(error)?.error;
  if (body?.status && STATUS_CODES[body.status] !== undefined) {
    const code = STATUS_CODES[body.status]!;
    const reason = body.errors?.[0]?.reason;
    const message = `${code} ${body.status}: ${body.message ?? ''}`;
    return { kind: reason && TRANSIENT_REASONS.has(reason) ? 'transient' : (GRPC[code] ?? 'refused'), message, code, reason };
  }
  const e = error as { code?: unknown; message?: string; errors?: { reason?: string; message?: string }[]; reason?: string };
  const message = (body?.message ?? e?.message ?? String(error)).split('\n')[0]!;
  const reason = e?.errors?.[0]?.reason ?? e?.reason;
  const code = e?.code as number | string | undefined;
  if (reason && TRANSIENT_REASONS.has(reason)) return { kind: 'transient', message, code, reason };
  if (typeof code === 'string') return { kind: NETWORK_CODES.test(code) ? 'transient' : 'refused', message, code, reason };
  if (typeof code !== 'number') return { kind: 'refused', message, reason }; // e.g. a statement refused at job creation
  // gRPC codes are 1-16 (gax clients); HTTP statuses are 100 and up (BigQuery and Storage clients).
  if (code < 100) return { kind: GRPC[code] ?? 'refused', message, code, reason };
  return { kind: httpKind(code), message, code, reason };
}

function httpKind(status: number): Kind {
  if (status === 400) return 'invalid';
  if (status === 401 || status === 403) return 'permission';
  if (status === 404) return 'notFound';
  if (status === 409) return 'conflict';
  if (status === 408 || status === 412 || status === 429 || status >= 500) return 'transient';
  return 'refused';
}

/** Whether the error means the thing is not there (HTTP 404 or gRPC NOT_FOUND). */
export function isNotFound(error: unknown): boolean {
  return describeGoogleError(error).kind === 'notFound';
}

export function isAlreadyExists(error: unknown): boolean {
  return describeGoogleError(error).kind === 'conflict';
}

/** A classified ObjinferError naming what was being done. */
export function classifyGoogleError(error: unknown, doing: string): ObjinferError {
  if (error instanceof ObjinferError) return error;
  const info = describeGoogleError(error);
  return classifyInfo(info, doing);
}

export function classifyInfo(info: GoogleErrorInfo, doing: string): ObjinferError {
  const message = `${doing}: ${info.message}`;
  if (isPropagationMessage(info.message)) {
    return new ObjinferError(ErrorType.IamPropagationPending, `${message} (IAM changes take time to propagate; retrying)`);
  }
  if (API_DISABLED.test(info.message)) {
    return new ObjinferError(
      ErrorType.PermissionDenied,
      `${message}. Enable the API in the project (e.g. gcloud services enable cloudresourcemanager.googleapis.com bigqueryconnection.googleapis.com bigqueryreservation.googleapis.com), then run again`,
    );
  }
  if (info.reason === CANCELLED_REASON) {
    return new ObjinferError(
      ErrorType.JobCancelled,
      `${message}. The BigQuery job was cancelled outside objinfer (the console, bq cancel, or an administrator), so the run stops; ` +
        "what was done is kept and the batch's images stay pending: run again to go on",
    );
  }
  switch (info.kind) {
    case 'quota':
      return new ObjinferError(
        ErrorType.QuotaExceeded,
        `${message}. A BigQuery quota (Google's message names it) that retrying within minutes does not lift: wait for it to reset or raise it ` +
          '(Cloud console, IAM & Admin > Quotas), then run again; what was done is kept',
      );
    case 'transient':
      return new ObjinferError(ErrorType.WarehouseBusy, message);
    case 'permission':
      return new ObjinferError(
        ErrorType.PermissionDenied,
        `${message}. Grant the missing permission to the caller (docs/gcp.md "Permissions"), then run again`,
      );
    case 'invalid':
      return new ObjinferError(ErrorType.InvalidConfig, `${message}. Check the config values this step uses`);
    case 'notFound':
      return new ObjinferError(ErrorType.NotFound, `${message}. Check that it exists and that the project and location are right`);
    case 'conflict':
      return new ObjinferError(ErrorType.ResourceConflict, message);
    case 'refused':
      return new ObjinferError(ErrorType.Refused, `${message} (Google refused it; retrying would not help)`);
  }
}
