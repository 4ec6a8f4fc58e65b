/**
 * Failure types shared by backends, activities and workflows. The strings are the
 * ApplicationFailure types that retry policies name, so they are part of the contract.
 */
export const ErrorType = {
  InvalidConfig: 'InvalidConfig',
  PermissionDenied: 'PermissionDenied',
  IamPropagationPending: 'IamPropagationPending',
  IamPropagationTimeout: 'IamPropagationTimeout',
  ResourceConflict: 'ResourceConflict',
  NotFound: 'NotFound',
  ModelShapeMismatch: 'ModelShapeMismatch',
  ModelInvalid: 'ModelInvalid',
  WarehouseBusy: 'WarehouseBusy',
  /** Google refused the request or statement as it stands (a retry would be refused the same way). */
  Refused: 'Refused',
  /** The disk holding the warehouse or the objects is full: free space, then run again. */
  NoSpace: 'NoSpace',
  /** A passing failure (a busy file, too many open files, a write conflict): a later attempt may not meet it. */
  Transient: 'Transient',
  /** A Google quota that a retry within minutes does not lift (quotaExceeded). */
  QuotaExceeded: 'QuotaExceeded',
  /** A failure nothing marks as passing: retrying would meet it again, so the step fails with it. */
  StepFailed: 'StepFailed',
  /** A BigQuery job of the run was cancelled outside objinfer (console, `bq cancel`): someone wanted it stopped, so the run stops. */
  JobCancelled: 'JobCancelled',
} as const;
export type ErrorType = (typeof ErrorType)[keyof typeof ErrorType];

/** Types that a retry cannot fix: the activity fails at once with an actionable message. */
export const NON_RETRYABLE_ERROR_TYPES: ErrorType[] = [
  ErrorType.InvalidConfig,
  ErrorType.PermissionDenied,
  ErrorType.IamPropagationTimeout,
  ErrorType.ResourceConflict,
  ErrorType.NotFound,
  ErrorType.ModelShapeMismatch,
  ErrorType.ModelInvalid,
  ErrorType.Refused,
  ErrorType.NoSpace,
  ErrorType.QuotaExceeded,
  ErrorType.StepFailed,
  ErrorType.JobCancelled,
];

/**
 * Failure messages travel in workflow history, where Temporal bounds a failure's size (a
 * 100 000-character pattern made one it refused). Longer ones are cut here; the worker logs
 * them whole.
 */
export const MAX_FAILURE_MESSAGE = 2000;

export function truncateMessage(message: string, max = MAX_FAILURE_MESSAGE): string {
  if (message.length <= max) return message;
  const omitted = message.length - max;
  return `${message.slice(0, max)}… (${omitted} more characters in the worker's log)`;
}

/** An error a backend raises on purpose; activities turn it into an ApplicationFailure. */
export class ObjinferError extends Error {
  override readonly name = 'ObjinferError';
  constructor(
    readonly type: ErrorType,
    message: string,
  ) {
    super(message);
  }

  get retryable(): boolean {
    return !NON_RETRYABLE_ERROR_TYPES.includes(this.type);
  }
}
