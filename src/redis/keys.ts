import type { RedisKind } from "./redis-url.js";

/**
 * Every Redis key Tollgate uses is built here, so their layout can be read in
 * one place and no other module concatenates key names.
 *
 * Layout: `<prefix>:<type>:<rest>`. Each type token is fixed and distinct, and
 * a user id is always the whole remainder of its key, so no user id, whatever
 * characters it holds (colons, braces, `*`), can name another user's key or a
 * key of another type. Where two free-form values share a key (user and
 * idempotency key) the first is length-prefixed for the same reason.
 */
export interface Keys {
  /** List of a user's queued task ids, head first. */
  queue(userId: string): string;
  /** Sorted set: user id -> earliest moment (ms) its head task may start. */
  readonly dueUsers: string;
  /** Sorted set: task id -> moment (ms) its running lease expires. */
  readonly leases: string;
  /** Sorted set: task id -> moment (ms) its next attempt may start. */
  readonly retries: string;
  /** List of a user's dead-lettered task ids, newest first. */
  deadLetters(userId: string): string;
  /** Pub/sub channel: a user became due at the published moment (ms). */
  readonly wakeChannel: string;
  /**
   * Hash of a user's counters: r running, w waiting to retry, ok succeeded,
   * f failed attempts, d dead-lettered (the last three only ever grow).
   */
  stats(userId: string): string;
  /** Hash of the same counters over every user, plus q: queued or waiting to retry. */
  readonly totals: string;
  /** Pub/sub channel: the published user's counts changed. */
  readonly progressChannel: string;
  /** Hash: one task's record; its fields are TASK_FIELD, documented below. */
  task(taskId: string): string;
  /**
   * List: what one claim took (task id, user id, attempt per task), kept
   * briefly so a drainer whose client timed out waiting for the claim's reply
   * can learn what it claimed and hand it back.
   */
  claim(claimId: string): string;
  /** String: the task id that first used this idempotency key. */
  idempotency(userId: string, key: string): string;
  /** rate-limiter-flexible's keyPrefix for one window of the policy. */
  windowPrefix(durationMs: number): string;
}

const DEFAULT_KEY_PREFIX = "tg";

/**
 * The key prefix for a kind of deployment. On a Redis Cluster a script may
 * only touch keys of one hash slot, and claim builds per-user keys from
 * prefixes, so every key carries one hash tag, `{tg}`: Redis hashes only the
 * braces' content (the first pair in a key), so all of Tollgate's keys share
 * one slot, hence one master. Standalone and Sentinel keep `tg`, the layout
 * existing data is in. (Spreading users over slots is the partitions' work.)
 */
export function keyPrefixFor(kind: RedisKind): string {
  return kind === "cluster" ? `{${DEFAULT_KEY_PREFIX}}` : DEFAULT_KEY_PREFIX;
}

export function createKeys(prefix: string = DEFAULT_KEY_PREFIX): Keys {
  return Object.freeze({
    queue: (userId: string) => `${prefix}:q:${userId}`,
    dueUsers: `${prefix}:due`,
    leases: `${prefix}:leases`,
    retries: `${prefix}:retries`,
    deadLetters: (userId: string) => `${prefix}:dl:${userId}`,
    wakeChannel: `${prefix}:wake`,
    stats: (userId: string) => `${prefix}:u:${userId}`,
    totals: `${prefix}:totals`,
    progressChannel: `${prefix}:progress`,
    task: (taskId: string) => `${prefix}:t:${taskId}`,
    claim: (claimId: string) => `${prefix}:c:${claimId}`,
    idempotency: (userId: string, key: string) => `${prefix}:i:${Buffer.byteLength(userId)}:${userId}:${key}`,
    // rate-limiter-flexible appends ":<user id>" to this.
    windowPrefix: (durationMs: number) => `${prefix}:w:${durationMs}`,
  });
}

/**
 * The fields of a task's record (the hash at `task(id)`). The Lua scripts
 * use them as `FIELD_<NAME>` (`--- @include "task-fields"`, generated from
 * this object by lua-script.ts), GetTask (redis-store.ts) as `TASK_FIELD.<NAME>`.
 *
 * | field | meaning | written by | read by |
 * | --- | --- | --- | --- |
 * | u | user id | admit | claim (the user of an expired lease or a due retry), GetTask |
 * | p | payload (bytes); deleted when the task succeeds | admit; finish deletes | claim (handed to the handler), GetTask |
 * | k | kind, which picks a handler; absent for the default | admit | claim, GetTask |
 * | s | state, one of TASK_STATE | admit, claim, finish, release | admit-outcome, GetTask |
 * | a | attempts started (a released attempt is taken back) | admit, claim, release | claim (last attempt?), finish and release (is it still this attempt?), admit-outcome, GetTask |
 * | sub | submitted at (ms) | admit | GetTask, bench/drain.ts |
 * | st | the current attempt started at (ms); deleted when a release leaves no attempt | admit (start now), claim; release deletes | admit-outcome (Submit's answer), GetTask, bench/drain.ts |
 * | fin | finished at (ms): succeeded or dead | finish, claim (a lease lost on the last attempt) | GetTask |
 * | err | the last attempt's error | finish, claim (a lease lost on the last attempt) | GetTask |
 * | adm | 1: admit started the task itself, not a claim from the queue | admit | admit-outcome (must the Submit whose reply was lost run it?) |
 * | c | id of the claim that started the current attempt; absent for a start at Submit or after a release | claim; release deletes | release (only that claim may hand it back) |
 */
export const TASK_FIELD = Object.freeze({
  USER: "u",
  PAYLOAD: "p",
  KIND: "k",
  STATE: "s",
  ATTEMPTS: "a",
  SUBMITTED: "sub",
  STARTED: "st",
  FINISHED: "fin",
  ERROR: "err",
  STARTED_BY_ADMIT: "adm",
  CLAIM: "c",
} as const);

/** The values of a task's TASK_FIELD.STATE (Lua: `STATE_<NAME>`). */
export const TASK_STATE = Object.freeze({
  QUEUED: "q",
  RUNNING: "r",
  SUCCEEDED: "ok",
  /** An attempt failed and the next waits out its backoff (in the retries set). */
  FAILED: "f",
  /** Every attempt failed: on the user's dead-letter list. */
  DEAD: "d",
} as const);
