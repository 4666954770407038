import { authorizeReadTask, authorizeWatch, type Identity } from "./authorization.js";
import { notFound } from "./service-error.js";
import type { TaskRecord, TaskStore } from "./store.js";
import { checkTaskId, checkUserId } from "./validation.js";

// The rules of the read operations, WatchQueue and GetTask: what a request
// must look like and what its caller may read. Each throws ServiceError.

/** WatchQueue's request: one user's queue (a valid user id), or every queue when `userId` is empty. */
export function checkWatchQueue(caller: Identity, userId: string): void {
  if (userId !== "") checkUserId(userId);
  authorizeWatch(caller, userId);
}

/** GetTask's request, before anything is read. */
export function checkGetTask(taskId: string): void {
  checkTaskId(taskId);
}

/** The task `taskId`, if it exists and the caller may read it. */
export async function readTask(
  store: Pick<TaskStore, "getTask">,
  caller: Identity,
  taskId: string,
): Promise<TaskRecord> {
  const record = await store.getTask(taskId);
  if (!record)
    throw notFound(`no task ${taskId} (finished tasks are kept for the server's retention, a day by default)`);
  authorizeReadTask(caller, record);
  return record;
}
