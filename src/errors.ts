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
];

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
