import { StoreUnavailable } from "../core/store.js";

// How ioredis and Redis errors are told apart, in one place: the store turns
// connection-level failures into the core's StoreUnavailable (toStoreError),
// so nothing above src/redis matches Redis' messages.

// Connection-level failures of ioredis and Redis' own "not now" replies: a
// retry later may succeed. A command that timed out or was in flight when the
// connection dropped may still have run (see isUnanswered).
const UNREACHABLE_PATTERNS = [
  /Connection is closed/i,
  /enableOfflineQueue/i,
  /Command timed out/i,
  /Reached the max retries per request/i,
  /\bE(CONNREFUSED|CONNRESET|PIPE|TIMEDOUT|HOSTUNREACH)\b/,
  /^(LOADING|READONLY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|BUSY)\b/,
  // ioredis Cluster: CLUSTERDOWN, TRYAGAIN, MOVED or ASK retried until it gave
  // up (the slot's master is down or moving), and a Cluster client that has
  // no slot map or no reachable node.
  /^Too many Cluster redirections/,
  // A MOVED or ASK that reaches us (a script sent in a pipeline with its WAIT
  // during a failover): Redis redirected the command instead of running it,
  // so nothing was written and a retry reaches the slot's new master.
  /^(MOVED|ASK) \d+ /,
  /^Cluster isn't ready/,
  /^Cluster is ended/,
  /^None of startup nodes is available/,
  /^Failed to refresh slots cache/,
  /^No subscriber for the cluster/,
];

// ioredis' errors for a command it wrote to Redis but got no reply to: its
// command timeout, and, with maxRetriesPerRequest 0, the flush of commands in
// flight when the connection drops. Redis may have run such a command (a
// script runs whole or not at all, but which is unknown), unlike a command
// refused before sending ("Stream isn't writeable ...").
const UNANSWERED_PATTERNS = [/^Command timed out/, /^Reached the max retries per request limit/];

/** The ioredis or Redis error itself, also when the store already wrapped it. */
const raw = (error: unknown): unknown => (error instanceof StoreUnavailable ? error.cause : error);

/** Is Redis unreachable or not serving now (a connection-level failure, or a "not now" reply)? */
export function isRedisUnreachable(error: unknown): boolean {
  const cause = raw(error);
  return cause instanceof Error && UNREACHABLE_PATTERNS.some((pattern) => pattern.test(cause.message));
}

/**
 * Is Redis at its maxmemory under noeviction? It then refuses a script before
 * it runs, so nothing was written; an operator has to make room.
 */
function isRedisFull(error: unknown): boolean {
  const cause = raw(error);
  return cause instanceof Error && /^OOM\b/.test(cause.message);
}

/** Did this command fail after it was sent, so that it may have run? */
export function isUnanswered(error: unknown): boolean {
  const cause = raw(error);
  return cause instanceof Error && UNANSWERED_PATTERNS.some((pattern) => pattern.test(cause.message));
}

/** StoreUnavailable for an unreachable or full Redis; any other error as it is. */
export function toStoreError(error: unknown): unknown {
  if (error instanceof StoreUnavailable) return error;
  if (isRedisFull(error)) return new StoreUnavailable("full", error);
  if (isRedisUnreachable(error)) return new StoreUnavailable("unreachable", error);
  return error;
}

/** Sends one command, its connection-level failures as StoreUnavailable. */
export async function storeCall<T>(command: () => Promise<T>): Promise<T> {
  try {
    return await command();
  } catch (error) {
    throw toStoreError(error);
  }
}
