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
  /**
   * Hash: one task's record. u user id, p payload, k kind, s state (q, r, ok,
   * f, d), a attempts started, sub/st/fin submitted, started, finished (ms),
   * err last error, retry next attempt's moment, c the claim id of the claim
   * that started the current attempt (absent for a start at Submit).
   */
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

export const DEFAULT_KEY_PREFIX = "tg";

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
    idempotency: (userId: string, key: string) =>
      `${prefix}:i:${Buffer.byteLength(userId)}:${userId}:${key}`,
    // rate-limiter-flexible appends ":<user id>" to this.
    windowPrefix: (durationMs: number) => `${prefix}:w:${durationMs}`,
  });
}
