/**
 * How Google's errors map onto objinfer's failure types, so that retry policies treat
 * IAM propagation as "wait and retry" and everything else as "fix this first".
 */
import { ErrorType, ObjinferError } from '../../errors';

export interface GoogleError {
  /** HTTP status (403, 400, ...) or gRPC code mapped to one. */
  code?: number;
  message: string;
}

/**
 * Messages Google returns while a new grant or a new connection's service account is
 * still propagating. They look like permission errors but go away by themselves.
 */
const PROPAGATION_MESSAGES = [
  /Permission denied while globbing file pattern/i,
  /does not have storage\.objects\.(list|get) access/i,
  /Service account .* does not exist/i,
];

/** DECODE_IMAGE's complaints about an object that is not an image it can read. */
const DECODE_MESSAGES = [/ML\.DECODE_IMAGE/i, /failed to decode/i, /unsupported image format/i, /image (is )?too large/i];

export function isPropagationError(error: GoogleError): boolean {
  return PROPAGATION_MESSAGES.some((pattern) => pattern.test(error.message));
}

/** A failed ML.PREDICT job whose cause is one bad object: split the batch to isolate it. */
export function isDecodeError(error: GoogleError): boolean {
  return DECODE_MESSAGES.some((pattern) => pattern.test(error.message));
}

export function classifyGoogleError(error: GoogleError, doing: string): ObjinferError {
  const message = `${doing}: ${error.message}`;
  if (isPropagationError(error)) {
    return new ObjinferError(ErrorType.IamPropagationPending, `${message} (IAM changes take time to propagate; retrying)`);
  }
  switch (error.code) {
    case 401:
    case 403:
      return new ObjinferError(
        ErrorType.PermissionDenied,
        `${message}. Grant the missing permission to the caller (see README "Run on Google Cloud": the roles the procedure needs), then run again`,
      );
    case 400:
      return new ObjinferError(ErrorType.InvalidConfig, `${message}. Check the config values this step uses`);
    case 404:
      return new ObjinferError(ErrorType.NotFound, `${message}. Check that it exists and that the project and location are right`);
    default:
      // 429, 5xx and the unknown: let the retry policy try again.
      return new ObjinferError(ErrorType.WarehouseBusy, message);
  }
}
