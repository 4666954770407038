/**
 * The codes the Lua scripts reply with, named once. redis-store.ts parses
 * replies with these objects, and lua-script.ts turns each into Lua locals
 * for `--- @include "reply-codes"` (`ADMIT.STARTED` becomes `ADMIT_STARTED`),
 * so a script and its reader cannot disagree on a number.
 */

/** admit-n.lua: what became of a submitted task (the reply's first entry). */
export const ADMIT = Object.freeze({
  /** Started now: counted in every window and running under a lease. */
  STARTED: 1,
  /** Stored at the back of the user's queue. */
  QUEUED: 2,
  /** The idempotency key was used before; the reply names the first task. Nothing stored. */
  DUPLICATE: 3,
  /** Reject mode and the policy refuses a start now. Nothing stored. */
  OVER_LIMIT: 4,
  /** The user's backlog is at its cap. Nothing stored. */
  BACKLOG_FULL: 5,
  /** Reject mode and the user's queue is paused (PauseQueue). Nothing stored. */
  PAUSED: 6,
  /** The declared window counters do not cover the user's policy (it changed): the reply names it; run again. Nothing stored. */
  POLICY_CHANGED: 7,
  /** The task's cost is above a window's limit (the reply's n-th window): it could never start. Nothing stored. */
  COST_TOO_HIGH: 8,
} as const);

/** finish-7.lua: what recording an attempt's end did. */
export const FINISH = Object.freeze({
  /** The attempt no longer held its lease; nothing was recorded. */
  LEASE_LOST: 0,
  SUCCEEDED: 1,
  RETRY_SCHEDULED: 2,
  DEAD: 3,
  /** Dead, and the user's dead-letter list is over its cap now: trim it (trim-dead-letters-n.lua). */
  DEAD_OVER_CAP: 4,
  /** Its cancel was requested while it ran (cancel-n.lua): it ended cancelled, whatever the attempt's result. */
  CANCELLED: 5,
} as const);

/** release-7.lua: whether a held task was handed back. */
export const RELEASE = Object.freeze({
  /** The attempt no longer held its lease (or the claim id did not match). */
  LEASE_LOST: 0,
  RELEASED: 1,
  /** Its cancel was requested while it ran: it ended cancelled instead of going back to its queue. */
  CANCELLED: 2,
} as const);

/** cancel-n.lua: what became of each task it was asked to cancel (one code per task, in order). */
export const CANCEL = Object.freeze({
  /** No such record (never was, expired, or another user's). Nothing changed. */
  NOT_FOUND: 0,
  /** Cancelled now: it left its queue or the retry schedule. */
  CANCELLED: 1,
  /** It was cancelled before. Nothing changed. */
  ALREADY_CANCELLED: 2,
  /** It is running: marked, so that its attempt ends it cancelled (not retried). */
  CANCEL_REQUESTED: 3,
  /** It succeeded. Nothing changed. */
  SUCCEEDED: 4,
  /** It is dead-lettered. Nothing changed. */
  DEAD: 5,
  /** It expired (not started by its start_by). Nothing changed. */
  EXPIRED: 6,
} as const);
