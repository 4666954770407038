/**
 * The status of a refused request, as the core names it. The numbers are
 * gRPC's (and Connect's), so a transport maps them one to one; the core
 * itself knows nothing of any transport.
 */
export const StatusCode = {
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

export type StatusCode = (typeof StatusCode)[keyof typeof StatusCode];

/**
 * The one error type services throw on purpose: a refusal the caller can act
 * on, its message written for a person. Anything else thrown is a store
 * outage or a bug; the transport's status mapping tells them apart.
 */
export class ServiceError extends Error {
  override readonly name = "ServiceError";
  constructor(
    readonly code: StatusCode,
    message: string,
    /** When a retry may succeed, ms from now (RESOURCE_EXHAUSTED). */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** A field of the request is missing or malformed: "`field`: `problem`". */
export function invalidArgument(field: string, problem: string): ServiceError {
  return new ServiceError(StatusCode.INVALID_ARGUMENT, `${field}: ${problem}`);
}

/** The whole request is malformed (not one field of it). */
export function malformedRequest(message: string): ServiceError {
  return new ServiceError(StatusCode.INVALID_ARGUMENT, message);
}

export function notFound(message: string): ServiceError {
  return new ServiceError(StatusCode.NOT_FOUND, message);
}

export function permissionDenied(message: string): ServiceError {
  return new ServiceError(StatusCode.PERMISSION_DENIED, message);
}

export function unauthenticated(message: string): ServiceError {
  return new ServiceError(StatusCode.UNAUTHENTICATED, message);
}

/** Over a limit; a retry after `retryAfterMs` may succeed. */
export function resourceExhausted(message: string, retryAfterMs: number): ServiceError {
  return new ServiceError(StatusCode.RESOURCE_EXHAUSTED, message, retryAfterMs);
}

/**
 * The user's queue is paused (PauseQueue): RESOURCE_EXHAUSTED without a
 * time to retry, since nobody knows when it resumes.
 */
export function queuePaused(message: string): ServiceError {
  return new ServiceError(StatusCode.RESOURCE_EXHAUSTED, message);
}

/** The request is well formed but the thing it names is in the wrong state for it. */
export function failedPrecondition(message: string): ServiceError {
  return new ServiceError(StatusCode.FAILED_PRECONDITION, message);
}

export function unavailable(message: string): ServiceError {
  return new ServiceError(StatusCode.UNAVAILABLE, message);
}
