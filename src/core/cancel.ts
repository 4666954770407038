import { metrics } from "../metrics.js";
import { authorizeCancelTask, authorizePurge, type Identity } from "./authorization.js";
import { failedPrecondition, notFound } from "./service-error.js";
import type { TaskRecord, TaskStore } from "./store.js";
import { checkTaskId, checkUserId } from "./validation.js";

// The rules of CancelTask and PurgeQueue: what a request must look like, who
// may cancel whose tasks, and which tasks can be cancelled. Each check throws
// ServiceError.

const EXPIRED = "(finished tasks are kept for the server's retention, a day by default)";

/** CancelTask's request, before anything is read. */
export function checkCancelTask(taskId: string): void {
  checkTaskId(taskId);
}

/** PurgeQueue's request, checked and authorized, before anything is changed. */
export function checkPurgeQueue(caller: Identity, userId: string): void {
  checkUserId(userId);
  authorizePurge(caller, userId);
}

/**
 * Cancels the task `taskId` if the caller may (its record names the user)
 * and it has not started or waits to retry; a running task is marked (its
 * handler is aborted, and its attempt's end makes it CANCELLED) and answered
 * as it is then; a task cancelled before answers as it is.
 * Returns the task's record after the call.
 */
export async function cancelTask(
  store: Pick<TaskStore, "getTask" | "cancelTask">,
  caller: Identity,
  taskId: string,
): Promise<TaskRecord> {
  const before = await store.getTask(taskId);
  if (!before) throw notFound(`no task ${taskId} ${EXPIRED}`);
  authorizeCancelTask(caller, before);
  const outcome = await store.cancelTask({ taskId, userId: before.userId });
  // Counted by the process that cancelled it (cancel-n.lua's reply); a marked running task is counted
  // by the process whose finish, release or claim ends it cancelled (task-runner, drainer).
  if (outcome === "cancelled") metrics.cancelled.inc();
  switch (outcome) {
    case "cancelled":
    case "cancel-requested":
    case "already-cancelled": {
      const after = await store.getTask(taskId);
      // Expired between the two reads (a task cancelled a retention ago): answer what it was.
      return after ?? { ...before, state: "cancelled" };
    }
    case "succeeded":
    case "dead":
    case "expired":
      throw failedPrecondition(`task ${taskId} already finished (${outcome})`);
    case "not-found":
      throw notFound(`no task ${taskId} ${EXPIRED}`);
  }
}

/** Cancels every task of `userId` that has not started or waits to retry; returns how many. */
export async function purgeQueue(store: Pick<TaskStore, "purgeQueue">, userId: string): Promise<number> {
  const cancelled = await store.purgeQueue(userId);
  metrics.cancelled.inc(cancelled);
  return cancelled;
}
