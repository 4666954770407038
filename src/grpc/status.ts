import { Metadata, status as Status, type StatusObject } from "@grpc/grpc-js";
import type { Logger } from "../logger.js";
import { encodeStatusWithRetryInfo } from "./retry-info.js";
import { AdmitReplyLost, NotReplicated, StoreUnavailable } from "../core/store.js";
import { ServiceError, StatusCode } from "../core/service-error.js";

// The core's status codes, each to its gRPC status (the same numbers, named
// here so that a code added to the core must be mapped).
const GRPC_STATUS: Readonly<Record<StatusCode, Status>> = {
  [StatusCode.INVALID_ARGUMENT]: Status.INVALID_ARGUMENT,
  [StatusCode.NOT_FOUND]: Status.NOT_FOUND,
  [StatusCode.PERMISSION_DENIED]: Status.PERMISSION_DENIED,
  [StatusCode.RESOURCE_EXHAUSTED]: Status.RESOURCE_EXHAUSTED,
  [StatusCode.FAILED_PRECONDITION]: Status.FAILED_PRECONDITION,
  [StatusCode.UNAVAILABLE]: Status.UNAVAILABLE,
  [StatusCode.UNAUTHENTICATED]: Status.UNAUTHENTICATED,
};

const RETRY_AFTER_TRAILER = "retry-after-ms";

const STORE_UNAVAILABLE =
  "the task store (Redis) is unreachable; retry later (with the same idempotency key, a retry is safe)";

// A Submit whose admit script got no reply and whose record could not be read
// either: the task may have been stored. UNAVAILABLE like any store outage,
// but the message must not promise that nothing was stored.
const outcomeUnknown = (taskId: string): string =>
  `the task store (Redis) did not answer in time (a stall or a dropped connection), so whether task ${taskId} was stored is unknown: ` +
  "retry with the same idempotency key (safe: it answers DUPLICATE if the task was stored), " +
  `or ask GetTask for ${taskId} before retrying without one (a retry may store the task twice)`;

// The same, but the record was read afterwards and showed nothing stored.
const NOT_STORED =
  "the task store (Redis) did not answer in time (a stall or a dropped connection); the task was not stored, so a retry is safe";

// A full store (Redis at its maxmemory under noeviction) refuses a script
// before it runs, so nothing was written; the operator has to make room.
const STORE_FULL =
  "the task store (Redis) is full (maxmemory reached); nothing was stored; retry later, and operators: raise maxmemory or drain queues";

// A Submit stored on the Redis primary that its replicas did not confirm in
// time (TOLLGATE_REPLICA_ACKS): kept unless the primary fails before a
// replica has it. UNAVAILABLE, as the promise "it survives a failover" could
// not be given; the message says it is probably stored, so retry safely.
const notReplicated = (error: NotReplicated): string =>
  `task ${error.admission.taskId} is stored on the Redis primary but not yet replicated ` +
  `(${error.replicas} of ${error.required} replicas confirmed it in time), so a failover now could lose it: ` +
  "retry with the same idempotency key (safe: it answers DUPLICATE while the task is stored), " +
  `or ask GetTask for ${error.admission.taskId} before retrying without one (a retry may store the task twice)`;

export type GrpcStatus = Partial<StatusObject> & { code: Status; details: string };

export interface StatusMapping {
  readonly status: GrpcStatus;
  /** Set when the error was not expected: log it, it is a bug or an outage. */
  readonly unexpected?: unknown;
}

/** The one place that turns anything thrown (a core ServiceError above all) into a gRPC status. */
export function toStatus(error: unknown): StatusMapping {
  if (error instanceof ServiceError) {
    const code = GRPC_STATUS[error.code];
    const metadata = new Metadata();
    if (error.retryAfterMs !== undefined) {
      const retryAfterMs = Math.max(0, Math.ceil(error.retryAfterMs));
      metadata.set(RETRY_AFTER_TRAILER, String(retryAfterMs));
      metadata.set(
        "grpc-status-details-bin",
        Buffer.from(encodeStatusWithRetryInfo(code, error.message, retryAfterMs)),
      );
    }
    return { status: { code, details: error.message, metadata } };
  }
  if (error instanceof NotReplicated) {
    return { status: { code: Status.UNAVAILABLE, details: notReplicated(error) }, unexpected: error };
  }
  if (error instanceof AdmitReplyLost) {
    const details = error.stored === "no" ? NOT_STORED : outcomeUnknown(error.taskId);
    return { status: { code: Status.UNAVAILABLE, details }, unexpected: error };
  }
  // UNAVAILABLE invites a retry. A command that timed out or was in flight
  // when the connection dropped may still have run: Submit's admit reads what
  // happened before answering (AdmitReplyLost above).
  if (error instanceof StoreUnavailable) {
    const details = error.reason === "full" ? STORE_FULL : STORE_UNAVAILABLE;
    return { status: { code: Status.UNAVAILABLE, details }, unexpected: error };
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
