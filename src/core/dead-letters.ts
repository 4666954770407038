import { metrics } from "../metrics.js";
import { actingUserId, authorizeDeadLetters, type Identity } from "./authorization.js";
import { invalidArgument } from "./service-error.js";
import type { DeadLetterResult, DeadLetterSelection, TaskStore } from "./store.js";
import { isTaskId } from "./task-id.js";
import { checkUserId } from "./validation.js";

// The rules of RequeueDeadLetters and PurgeDeadLetters: what a request must
// look like and who may act on whose dead letters. Each check throws
// ServiceError.

/** Ids one request may name; more is refused (a client sends several requests, or none for "all"). */
const MAX_DEAD_LETTER_IDS = 1000;

export type DeadLetterAction = "requeue" | "purge";

export interface DeadLettersRequest {
  /** Empty: the user of the caller's key. */
  readonly userId: string;
  /** Empty: every dead letter of the user. */
  readonly taskIds: readonly string[];
}

/** A checked request: whose dead letters, and which (ids repeated in the request are taken once). */
export interface DeadLettersQuery {
  readonly userId: string;
  readonly tasks: DeadLetterSelection;
}

/** The request of RequeueDeadLetters or PurgeDeadLetters, checked and authorized, before anything is changed. */
export function checkDeadLetters(
  caller: Identity,
  action: DeadLetterAction,
  request: DeadLettersRequest,
): DeadLettersQuery {
  const userId = actingUserId(caller, request.userId);
  checkUserId(userId);
  const { taskIds } = request;
  if (taskIds.length > MAX_DEAD_LETTER_IDS) {
    throw invalidArgument(
      "task_ids",
      `names ${taskIds.length} tasks; the limit is ${MAX_DEAD_LETTER_IDS} per request (or none, for every dead letter)`,
    );
  }
  taskIds.forEach((taskId, i) => {
    if (!isTaskId(taskId)) {
      throw invalidArgument(
        `task_ids[${i}]`,
        `is not a Tollgate task id (a partition number, a dot and 22 characters of base64url, as Submit returns it)`,
      );
    }
  });
  authorizeDeadLetters(caller, action, userId);
  return { userId, tasks: taskIds.length === 0 ? "all" : [...new Set(taskIds)] };
}

/** Requeues or purges the checked request's dead letters, counting them in this process's metrics. */
export async function changeDeadLetters(
  store: Pick<TaskStore, "requeueDeadLetters" | "purgeDeadLetters">,
  action: DeadLetterAction,
  query: DeadLettersQuery,
): Promise<DeadLetterResult> {
  if (action === "requeue") {
    const result = await store.requeueDeadLetters(query.userId, query.tasks);
    metrics.deadLettersRequeued.inc(result.done);
    return result;
  }
  const result = await store.purgeDeadLetters(query.userId, query.tasks);
  metrics.deadLettersPurged.inc(result.done);
  return result;
}
