import { permissionDenied } from "./service-error.js";

// Who may do what. With auth off every caller is "anyone" and may do
// everything; with auth on a user's key acts for that user only, an admin's
// for everyone, and a worker's only runs tasks (WorkerService). Every
// PERMISSION_DENIED Tollgate answers is decided here.

/** Who is calling: anyone (auth off), one user, an admin, or a worker. */
export type Identity =
  | { readonly kind: "anyone" }
  | { readonly kind: "user"; readonly userId: string }
  /** keyId: a fingerprint of the key (not the key), naming who made a change in the logs. */
  | { readonly kind: "admin"; readonly keyId?: string }
  | { readonly kind: "worker"; readonly keyId?: string };

export const ANYONE: Identity = Object.freeze({ kind: "anyone" });

/** May this caller act for every user (auth off, or an admin key)? */
function actsForAll(caller: Identity): boolean {
  return caller.kind === "anyone" || caller.kind === "admin";
}

/** May this caller act on `userId`'s queue and tasks? */
function mayActFor(caller: Identity, userId: string): boolean {
  return actsForAll(caller) || (caller.kind === "user" && caller.userId === userId);
}

/**
 * The user a request acts for: the one it names, or, when it names none, the
 * user of the caller's key (an admin or anyone must name one).
 */
export function actingUserId(caller: Identity, requested: string): string {
  return requested === "" && caller.kind === "user" ? caller.userId : requested;
}

function denied(caller: Identity, what: string): never {
  if (caller.kind === "worker")
    throw permissionDenied(`a worker key only runs tasks (WorkerService); it may not ${what}`);
  const who = caller.kind === "user" ? `user "${caller.userId}"` : "this caller";
  throw permissionDenied(`this API key acts for ${who} only; it may not ${what}`);
}

/** Submit a task to `userId`'s queue. */
export function authorizeSubmit(caller: Identity, userId: string): void {
  if (!mayActFor(caller, userId)) denied(caller, `submit for user "${userId}"`);
}

/** Watch `userId`'s queue, or every queue when `userId` is empty (admins only). */
export function authorizeWatch(caller: Identity, userId: string): void {
  if (userId === "") {
    if (!actsForAll(caller)) denied(caller, "watch every queue (admins only)");
    return;
  }
  if (!mayActFor(caller, userId)) denied(caller, `watch user "${userId}"'s queue`);
}

/** Read a task of `task.userId`'s. */
export function authorizeReadTask(caller: Identity, task: { readonly userId: string }): void {
  if (!mayActFor(caller, task.userId)) {
    if (caller.kind === "worker") denied(caller, "read tasks");
    throw permissionDenied("this API key may read only its own user's tasks");
  }
}

/** Cancel a task of `task.userId`'s: as reading it (another user's task is PERMISSION_DENIED, as GetTask answers). */
export function authorizeCancelTask(caller: Identity, task: { readonly userId: string }): void {
  if (!mayActFor(caller, task.userId)) {
    if (caller.kind === "worker") denied(caller, "cancel tasks");
    throw permissionDenied("this API key may cancel only its own user's tasks");
  }
}

/** Purge `userId`'s queue. */
export function authorizePurge(caller: Identity, userId: string): void {
  if (!mayActFor(caller, userId)) denied(caller, `purge user "${userId}"'s queue`);
}

/** Pause or resume `userId`'s queue. */
export function authorizePause(caller: Identity, action: "pause" | "resume", userId: string): void {
  if (!mayActFor(caller, userId)) denied(caller, `${action} user "${userId}"'s queue`);
}

/** List `userId`'s tasks. */
export function authorizeList(caller: Identity, userId: string): void {
  if (!mayActFor(caller, userId)) denied(caller, `list user "${userId}"'s tasks`);
}

/** Requeue or purge `userId`'s dead letters. */
export function authorizeDeadLetters(caller: Identity, action: "requeue" | "purge", userId: string): void {
  if (!mayActFor(caller, userId)) denied(caller, `${action} user "${userId}"'s dead letters`);
}

/** List every user's queue (ListQueues): admins only (anyone, with auth off). */
export function authorizeListQueues(caller: Identity): void {
  if (!actsForAll(caller)) denied(caller, "list every user's queue (admins only)");
}

/** Change plans and users' policies (PolicyService): admins only (anyone, with auth off). */
export function authorizePolicyChange(caller: Identity, what: string): void {
  if (!actsForAll(caller)) denied(caller, `${what} (PolicyService is for admin keys only)`);
}

/** Open a worker stream (WorkerService.Work): worker and admin keys (anyone, with auth off). */
export function authorizeWorker(caller: Identity): void {
  if (caller.kind === "user") denied(caller, "run tasks (WorkerService is for worker and admin keys only)");
}

/** List the connected workers: worker and admin keys (anyone, with auth off). */
export function authorizeListWorkers(caller: Identity): void {
  if (caller.kind === "user") denied(caller, "list the connected workers (worker and admin keys only)");
}

/** Who a caller is, for the logs of what it changed: never a key itself. */
export function callerName(caller: Identity): string {
  switch (caller.kind) {
    case "anyone":
      return "anyone (auth off)";
    case "user":
      return `user key of "${caller.userId}"`;
    case "admin":
      return caller.keyId === undefined ? "admin key" : `admin key sha256:${caller.keyId}`;
    case "worker":
      return caller.keyId === undefined ? "worker key" : `worker key sha256:${caller.keyId}`;
  }
}
