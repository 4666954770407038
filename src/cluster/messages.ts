/** Set in the environment of forked workers: which slot of the pool this is. */
export const WORKER_INDEX_ENV = "TOLLGATE_WORKER_INDEX";
/**
 * Set to "1" in the environment of the first workers only: the primary has
 * just checked Redis' requirements, so they do not check again. A worker
 * forked later (a replacement) checks: Redis may have changed since.
 */
export const REDIS_CHECKED_ENV = "TOLLGATE_REDIS_CHECKED";

/** What workers and the primary say to each other over cluster IPC. */
export type WorkerMessage =
  | { readonly type: "tollgate:heartbeat"; readonly eventLoopLagMs: number }
  | { readonly type: "tollgate:serving"; readonly port: number };

export function isWorkerMessage(message: unknown): message is WorkerMessage {
  return (
    typeof message === "object" &&
    message !== null &&
    typeof (message as { type?: unknown }).type === "string" &&
    (message as { type: string }).type.startsWith("tollgate:")
  );
}
