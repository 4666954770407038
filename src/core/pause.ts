import { authorizePause, type Identity } from "./authorization.js";
import type { TaskStore } from "./store.js";
import { checkUserId } from "./validation.js";

// The rules of PauseQueue and ResumeQueue: what a request must look like and
// who may pause or resume whose queue. Each check throws ServiceError. While
// a queue is paused the store starts nothing of it (its admit and claim
// scripts decide), so no check here can let a paused user's task start.

export type PauseAction = "pause" | "resume";

/** PauseQueue's or ResumeQueue's request, checked and authorized, before anything is changed. */
export function checkPauseQueue(caller: Identity, action: PauseAction, userId: string): void {
  checkUserId(userId);
  authorizePause(caller, action, userId);
}

/** Pauses or resumes `userId`'s queue (idempotent); returns whether it is paused after, and how many tasks wait. */
export async function setQueuePaused(
  store: Pick<TaskStore, "pauseQueue" | "resumeQueue">,
  action: PauseAction,
  userId: string,
): Promise<{ readonly paused: boolean; readonly queued: number }> {
  const { queued } = action === "pause" ? await store.pauseQueue(userId) : await store.resumeQueue(userId);
  return { paused: action === "pause", queued };
}
