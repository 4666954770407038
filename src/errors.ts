import { Metadata, status as Status, type StatusObject } from "@grpc/grpc-js";
import type { Logger } from "./logger.js";
import { encodeStatusWithRetryInfo } from "./retry-info.js";

/**
 * The one error type services throw on purpose. Anything else that reaches
 * toStatus is either a store outage (UNAVAILABLE) or a bug (INTERNAL, details
 * logged, not sent).
 */
export class ServiceError extends Error {
  override readonly name = "ServiceError";
  constructor(
    readonly code: Status,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export function invalidArgument(field: string, problem: string): ServiceError {
  return new ServiceError(Status.INVALID_ARGUMENT, `${field}: ${problem}`);
}

export const RETRY_AFTER_TRAILER = "retry-after-ms";

const STORE_UNAVAILABLE =
  "the task store (Redis) is unreachable; retry later (with the same idempotency key, a retry is safe)";

// Connection-level failures of ioredis and Redis' own "not now" replies: the
// call did not happen (or a script ran whole or not at all), so UNAVAILABLE
// invites a safe retry.
const UNAVAILABLE_PATTERNS = [
  /Connection is closed/i,
  /enableOfflineQueue/i,
  /Command timed out/i,
  /Reached the max retries per request/i,
  /\bE(CONNREFUSED|CONNRESET|PIPE|TIMEDOUT|HOSTUNREACH)\b/,
  /^(LOADING|READONLY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|BUSY)\b/,
];

export function isStoreUnavailable(error: unknown): boolean {
  return error instanceof Error && UNAVAILABLE_PATTERNS.some((pattern) => pattern.test(error.message));
}

export type GrpcStatus = Partial<StatusObject> & { code: Status; details: string };

export interface StatusMapping {
  readonly status: GrpcStatus;
  /** Set when the error was not expected: log it, it is a bug or an outage. */
  readonly unexpected?: unknown;
}

/** The one place that turns anything thrown into a gRPC status. */
export function toStatus(error: unknown): StatusMapping {
  if (error instanceof ServiceError) {
    const metadata = new Metadata();
    if (error.retryAfterMs !== undefined) {
      const retryAfterMs = Math.max(0, Math.ceil(error.retryAfterMs));
      metadata.set(RETRY_AFTER_TRAILER, String(retryAfterMs));
      metadata.set(
        "grpc-status-details-bin",
        Buffer.from(encodeStatusWithRetryInfo(error.code, error.message, retryAfterMs)),
      );
    }
    return { status: { code: error.code, details: error.message, metadata } };
  }
  if (isStoreUnavailable(error)) {
    return { status: { code: Status.UNAVAILABLE, details: STORE_UNAVAILABLE }, unexpected: error };
  }
  return { status: { code: Status.INTERNAL, details: "internal error" }, unexpected: error };
}

/**
 * toStatus, and the log line the failure deserves: nothing for a refusal the
 * caller caused, a one-line warning for a store outage (it is expected and
 * health already says so), the whole error for anything else.
 */
export function reportFailure(logger: Logger, error: unknown, context: Record<string, unknown>): GrpcStatus {
  const { status, unexpected } = toStatus(error);
  if (unexpected !== undefined) {
    if (status.code === Status.UNAVAILABLE) {
      logger.warn({ ...context, error: (unexpected as Error).message }, "request failed: store unavailable");
    } else {
      logger.error({ ...context, err: unexpected }, "request failed");
    }
  }
  return status;
}
