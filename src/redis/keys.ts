import { DEFAULT_PARTITIONS, partitionOf, partitionTag } from "./partitions.js";

/**
 * Every Redis key Tollgate uses is built here, so their layout can be read in
 * one place and no other module concatenates key names.
 *
 * Layout: `<prefix>:{<partition tag>}:<type>:<rest>`, one layout whether
 * Redis is standalone, behind Sentinel or a Cluster. Users are spread over a
 * fixed number of partitions (partitions.ts); every key of a partition and of
 * its users carries the partition's hash tag, so on a Cluster a partition is
 * one slot and every script runs in one slot with all its keys declared. The
 * tag is the first `{…}` of the key, before any user id, so no user id can
 * change the slot. Each type token is fixed and distinct, and a user id is
 * always the whole remainder of its key, so no user id, whatever characters
 * it holds (colons, braces, `*`), can name another user's key or a key of
 * another type. Where two free-form values share a key (user and idempotency
 * key) the first is length-prefixed for the same reason.
 *
 * Lifetimes. Every key has an owner and an end (each member below says which;
 * docs/operations.md has them as a table). Nothing of a user outlives its
 * use by more than a retention: with nothing queued, running, waiting to
 * retry or dead-lettered, a user holds no key past TOLLGATE_RETENTION (its
 * windows end sooner or with their own duration, its dead letters with
 * TOLLGATE_DEAD_LETTER_RETENTION). Lists, sets and hashes that hold
 * something end when emptied (an empty one is no key in Redis). Only the keys
 * of permanentKeys() have no end; test/integration/bounded-state.test.ts
 * checks that every other key of a finished user ends.
 */
export interface PartitionKeys {
  readonly partition: number;
  /** List of a user's queued task ids, head first. Ends when emptied. */
  queue(userId: string): string;
  /** Sorted set: user id -> earliest moment (ms) its head task may start. A user leaves it with its last queued task; ends when emptied. */
  readonly dueUsers: string;
  /**
   * Hash: user id -> its head task id, for every user in dueUsers (and every
   * paused user with a queued task), so a claim can name the head task's key
   * before it runs (keys are declared). A user leaves it with its last queued
   * task; ends when emptied.
   */
  readonly heads: string;
  /**
   * Sorted set, every score 0: users whose head task is of a kind the
   * drainer that found them due does not run, parked under that kind until
   * one that runs it claims them; member "<kind> <due ms, 15 digits> <user
   * id>", so a kind's users are one lexical range in due order
   * (lua/includes/parked). A parked user is out of dueUsers. Ends when
   * emptied.
   */
  readonly parked: string;
  /** Hash: parked user id -> its member in parked. Ends when emptied. */
  readonly parkedUsers: string;
  /**
   * Set of the user ids whose queue is paused (PauseQueue): nothing of theirs
   * starts, and a paused user is kept out of dueUsers (admit does not add it,
   * claim takes it out when something else did). A user leaves it at
   * ResumeQueue; ends when emptied.
   */
  readonly paused: string;
  /**
   * Sorted set: lease member (taskId:userId, see leaseMember) -> moment (ms)
   * its running lease expires. A member leaves when its attempt ends (or its
   * lease is recovered); ends when emptied.
   */
  readonly leases: string;
  /** Sorted set: lease member -> moment (ms) its next attempt may start. Ends when emptied. */
  readonly retries: string;
  /**
   * Sorted set: lease member (taskId:userId) -> the moment (ms) a delayed
   * task (Submit's not_before) joins the back of its user's queue; claim
   * moves it there when that moment has come (or ends it expired). Ends when
   * emptied.
   */
  readonly delayed: string;
  /**
   * List of a user's dead-lettered task ids, newest first, at most the cap
   * (TOLLGATE_DEAD_LETTER_CAP; briefly more, see lua/includes/dead-letter).
   * It owns its tasks' records: one trimmed at the cap leaves with its record
   * (trim-dead-letters-n.lua). An operator takes ids off it: requeued (the
   * record queued again) or purged (the record deleted with it);
   * requeue-dead-letters-n.lua, purge-dead-letters-n.lua. Expires TOLLGATE_DEAD_LETTER_RETENTION after
   * its newest entry, as each record does after its own, so no record
   * outlives it.
   */
  deadLetters(userId: string): string;
  /** Pub/sub channel (sharded on a Cluster): a user became due at the published moment (ms). */
  readonly wakeChannel: string;
  /**
   * Hash of a user's counters: r running, w waiting to retry, n delayed
   * (waiting for their not_before), ok succeeded, f failed attempts, d
   * dead-lettered, c cancelled (while queued, delayed or waiting to retry by
   * cancel-n.lua, or running when marked, by the finish, release or claim
   * that ends its attempt; lua/includes/cancelled), rq dead
   * letters requeued (requeue-dead-letters-n.lua), x expired (not started by
   * their start_by; the last six only ever grow), p queued above priority 0
   * and p1 … p9 queued at each level (lua/includes/priority: where a task
   * joins the queue), e its generation (the moment, ms, it was made), and
   * cap: 1 while the user's queue waits for its cap of running tasks to
   * free (lua/includes/policy; finish makes the user due and deletes it).
   * Kept while r, w, n or p is above 0; otherwise it expires TOLLGATE_RETENTION after its last change,
   * and the next change makes a new one from zero, with a new generation
   * (lua/includes/user-stats; WatchQueue counts across it, core/watch-counts.ts).
   */
  stats(userId: string): string;
  /**
   * Hash of the same counters over the partition's users (ok, f, d, c, rq,
   * x, never expiring), plus q: queued, delayed or waiting to retry, and dx: dead letters
   * dropped at their list's cap. Permanent (one per partition).
   */
  readonly totals: string;
  /** Pub/sub channel (sharded on a Cluster): the published user's counts changed. */
  readonly progressChannel: string;
  /**
   * Pub/sub channel (sharded on a Cluster): CancelTask marked the published
   * running task (id); the process running it aborts its handler.
   */
  readonly cancelChannel: string;
  /**
   * Hash: one task's record; its fields are TASK_FIELD, documented below.
   * Owned while queued, delayed, running or waiting to retry by the queue,
   * delayed set, leases or retries that name it (no expiry then); expires
   * TOLLGATE_RETENTION after it succeeded, was cancelled or expired, TOLLGATE_DEAD_LETTER_RETENTION after it was dead-lettered,
   * or is deleted when its id is trimmed or purged from the dead-letter list.
   * A requeued dead letter is queued again: owned by the queue, no expiry.
   */
  task(taskId: string): string;
  /**
   * List: what one claim took (task id, user id, attempt per task), kept
   * briefly so a drainer whose client timed out waiting for the claim's reply
   * can learn what it claimed and hand it back. Expires 15 s after the claim.
   */
  claim(claimId: string): string;
  /** String: the task id that first used this idempotency key. Expires TOLLGATE_RETENTION after that Submit. */
  idempotency(userId: string, key: string): string;
  /**
   * rate-limiter-flexible's keyPrefix for one window of the policy (":<user
   * id>" follows): a counter that expires with its window (its duration after
   * the start that opened it).
   */
  windowPrefix(durationMs: number): string;
  /**
   * Hash: user id -> what the user is given (PolicyService): "plan:<name>"
   * or "limits:<spec>" (an override; the spec as in plans). In the user's
   * partition, so the scripts resolve the user's policy in their own slot
   * (lua/includes/policy). Admin data: an entry is kept until deleted.
   */
  readonly policies: string;
  /**
   * Hash: plan name -> spec, "<limit>/<n><unit>,..." then ";<max running>"
   * when capped (redis/policy-spec.ts). The same in every partition: plans
   * are shared by users of every partition and a script reads only its own
   * slot, so PolicyService writes a plan to each partition's copy (for a
   * moment, during that write, some partitions may have it and some not).
   * Admin data: kept until deleted.
   */
  readonly plans: string;
}

/**
 * The global limit's keys (windows over every user together): all in one
 * slot of their own, `{global}`, apart from every partition, so a
 * partition's scripts never touch them; the store reserves global units in
 * a script of their own before a partition's claim or a start at Submit
 * (redis/global-limit.ts).
 */
export interface GlobalKeys {
  /** String: the global windows' spec PolicyService stored ("" for none); absent: the host's TOLLGATE_GLOBAL_LIMITS. Admin data, kept until deleted. */
  readonly policy: string;
  /**
   * Hash: requester (a partition number) -> "<earliest due ms>:<units wanted>:<updated ms>", the
   * requesters the global windows held back, so that units go to the longest waiting first. An
   * entry leaves when its requester is served, or when not refreshed for a window's duration and
   * 2 s (its process is gone); the key when empty.
   */
  readonly waiting: string;
  /** A global window's counter (same semantics as a user's window): expires with its window. */
  window(durationMs: number): string;
}

export interface Keys {
  /** The global limit's keys. */
  readonly global: GlobalKeys;
  /**
   * Hash in a slot of its own: server process ("<host>:<pid>") -> JSON
   * {at: ms, workers: [...]}, the workers connected to it over WorkerService
   * (redis/worker-directory.ts). Each process rewrites its field every few
   * seconds and deletes it when it stops; readers drop a field not
   * rewritten for 15 s (its process died). Expires 30 s after the last
   * write, so it ends when no process has workers.
   */
  readonly workers: string;
  /** How many partitions users are spread over. */
  readonly partitions: number;
  /** String, permanent: the partition count the data was written with (layout.ts). */
  readonly layout: string;
  /** Keys of every partition, in partition order. */
  readonly all: readonly PartitionKeys[];
  /** Keys of one partition (0 … partitions − 1). */
  partition(partition: number): PartitionKeys;
  /** Keys of the user's partition. */
  forUser(userId: string): PartitionKeys;
  /** Keys of the partition a task id names; undefined for an id of no partition here. */
  forTask(taskId: string): PartitionKeys | undefined;
  /** Keys of the layout before partitions (`tg:due`, `{tg}:due`, …): data there must be drained first. */
  readonly unpartitioned: readonly string[];
  /**
   * A SCAN MATCH pattern that every partition's deadLetters() key matches
   * (and some other keys may: check each with deadLettersOf). Users with
   * only dead letters are in no index, so ListQueues finds them by SCAN.
   */
  readonly deadLettersPattern: string;
  /** The partition and user of a deadLetters() key of this layout; undefined for any other key. */
  deadLettersOf(key: string): { readonly partition: number; readonly userId: string } | undefined;
}

const DEFAULT_KEY_PREFIX = "tg";

/**
 * A task's member in a partition's leases and retries sets: its id and its
 * user's, so that a claim can declare the user's keys before it runs. Task
 * ids hold no ":" (task-id.ts), so the first ":" splits them.
 */
export function leaseMember(taskId: string, userId: string): string {
  return `${taskId}:${userId}`;
}

/** The task id and user id of a lease member. */
export function parseLeaseMember(member: string): { readonly taskId: string; readonly userId: string } {
  const colon = member.indexOf(":");
  return { taskId: member.slice(0, colon), userId: member.slice(colon + 1) };
}

function partitionKeys(prefix: string, partition: number, tag: string): PartitionKeys {
  const base = `${prefix}:{${tag}}`;
  return Object.freeze({
    partition,
    queue: (userId: string) => `${base}:q:${userId}`,
    dueUsers: `${base}:due`,
    heads: `${base}:heads`,
    parked: `${base}:parked`,
    parkedUsers: `${base}:parked-users`,
    paused: `${base}:paused`,
    leases: `${base}:leases`,
    retries: `${base}:retries`,
    delayed: `${base}:delayed`,
    deadLetters: (userId: string) => `${base}:dl:${userId}`,
    wakeChannel: `${base}:wake`,
    stats: (userId: string) => `${base}:u:${userId}`,
    totals: `${base}:totals`,
    progressChannel: `${base}:progress`,
    cancelChannel: `${base}:cancel`,
    task: (taskId: string) => `${base}:t:${taskId}`,
    claim: (claimId: string) => `${base}:c:${claimId}`,
    idempotency: (userId: string, key: string) => `${base}:i:${Buffer.byteLength(userId)}:${userId}:${key}`,
    // rate-limiter-flexible appends ":<user id>" to this.
    windowPrefix: (durationMs: number) => `${base}:w:${durationMs}`,
    policies: `${base}:pol`,
    plans: `${base}:plans`,
  });
}

/** `text` as a literal in a Redis glob pattern (MATCH): `*`, `?`, `[`, `]` and `\\` escaped. */
function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, (char) => `\\${char}`);
}

export function createKeys(prefix: string = DEFAULT_KEY_PREFIX, partitions: number = DEFAULT_PARTITIONS): Keys {
  const tags = Array.from({ length: partitions }, (_, p) => partitionTag(p, partitions));
  const all = tags.map((tag, p) => partitionKeys(prefix, p, tag));
  const byTag = new Map(tags.map((tag, p) => [tag, p]));
  const global = `${prefix}:{global}`;
  return Object.freeze({
    global: Object.freeze({
      policy: `${global}:gpol`,
      waiting: `${global}:gwait`,
      window: (durationMs: number) => `${global}:gw:${durationMs}`,
    }),
    workers: `${prefix}:{workers}`,
    partitions,
    layout: `${prefix}:layout`,
    all: Object.freeze(all),
    partition: (partition: number) => {
      const keys = all[partition];
      if (!keys) throw new RangeError(`partition ${partition} is not one of 0 … ${partitions - 1}`);
      return keys;
    },
    forUser: (userId: string) => all[partitionOf(userId, partitions)]!,
    forTask: (taskId: string) => {
      const dot = taskId.indexOf(".");
      return dot > 0 ? all[Number(taskId.slice(0, dot))] : undefined;
    },
    deadLettersPattern: `${globEscape(prefix)}:{*}:dl:*`,
    deadLettersOf: (key: string) => {
      const start = `${prefix}:{`;
      if (!key.startsWith(start)) return undefined;
      // A partition's tag holds no "}", so the first one after the prefix ends it.
      const close = key.indexOf("}", start.length);
      const partition = close < 0 ? undefined : byTag.get(key.slice(start.length, close));
      const rest = `}:dl:`;
      if (partition === undefined || !key.startsWith(rest, close)) return undefined;
      return { partition, userId: key.slice(close + rest.length) };
    },
    unpartitioned: [`${prefix}:due`, `${prefix}:totals`, `{${prefix}}:due`, `{${prefix}}:totals`],
  });
}

/**
 * The fields of a task's record (the hash at `task(id)`). The Lua scripts
 * use them as `FIELD_<NAME>` (`--- @include "task-fields"`, generated from
 * this object by lua-script.ts), GetTask and ListTasks (redis-store.ts) as `TASK_FIELD.<NAME>`.
 *
 * | field | meaning | written by | read by |
 * | --- | --- | --- | --- |
 * | u | user id | admit | GetTask, ListTasks |
 * | p | payload (bytes); deleted when the task succeeds or is cancelled | admit; finish and cancel delete | claim (handed to the handler), GetTask, ListTasks |
 * | k | kind, which picks a handler; absent for the default | admit | claim, GetTask, ListTasks |
 * | s | state, one of TASK_STATE | admit, claim, finish, release, cancel, requeue | admit-outcome, GetTask, ListTasks |
 * | a | attempts started (a released attempt is taken back) | admit, claim, release, requeue (0) | claim (last attempt?), finish and release (is it still this attempt?), admit-outcome, GetTask, ListTasks |
 * | sub | submitted at (ms) | admit | GetTask, ListTasks, bench/drain.ts |
 * | st | the current attempt started at (ms); deleted when a release leaves no attempt | admit (start now), claim; release and requeue delete | admit-outcome (Submit's answer), GetTask, ListTasks, bench/drain.ts |
 * | fin | finished at (ms): succeeded, dead, cancelled or expired | finish, claim (a lease lost on the last attempt; an expired task), cancel; requeue deletes | GetTask, ListTasks |
 * | err | the last attempt's error | finish, claim (a lease lost on the last attempt); requeue deletes | GetTask, ListTasks |
 * | adm | 1: admit started the task itself, not a claim from the queue | admit; requeue deletes | admit-outcome (must the Submit whose reply was lost run it?) |
 * | c | id of the claim that started the current attempt; absent for a start at Submit or after a release | claim; release and requeue delete | release (only that claim may hand it back) |
 * | pr | priority (1 … 9), which places the task in its queue (lua/includes/priority); absent for 0 | admit | every script that puts it into its queue or takes it out, GetTask, ListTasks |
 * | tp | W3C traceparent of its Submit span (src/tracing.ts); absent when submitted without tracing | admit | claim (the attempt's span continues the trace) |
 * | nb | not before (ms): the moment a delayed task waited for; absent for one not delayed | admit | GetTask, ListTasks |
 * | sb | start by (ms): not started by then, it ends expired (claim); absent for no deadline | admit; requeue deletes | claim (at the head, or coming out of the delayed set, with no attempt started) |
 * | cost | units of every window each attempt uses (Submit's cost); absent for 1 | admit | claim (at the head) |
 * | cx | 1: CancelTask asked to cancel it while it ran (and published its id on cancelChannel); its attempt ends it cancelled (not retried; counted in the stats' and totals' c) | cancel; deleted when it ends cancelled | finish, release, claim (a lost lease) |
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
  CANCEL_REQUESTED: "cx",
  START_BY: "sb",
  NOT_BEFORE: "nb",
  PRIORITY: "pr",
  TRACEPARENT: "tp",
  COST: "cost",
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
  /** Cancelled (CancelTask, PurgeQueue) while queued or waiting to retry; it never runs again. */
  CANCELLED: "x",
  /** Not started by its start_by (claim found it so): it never runs. */
  EXPIRED: "xp",
} as const);

/**
 * The keys that never end, whatever users come and go: the layout record and
 * each partition's totals. Every other key is some user's, task's or claim's
 * and ends (see Keys and PartitionKeys); the partition's shared sets and
 * hashes (dueUsers, heads, leases, retries, delayed) end when emptied.
 */
export function permanentKeys(keys: Keys): string[] {
  return [keys.layout, ...keys.all.map((partition) => partition.totals)];
}

/** A count summed over every partition, read concurrently (on a Cluster they are on different masters). */
export async function sumOver(keys: Keys, count: (partition: PartitionKeys) => Promise<number>): Promise<number> {
  const counts = await Promise.all(keys.all.map(count));
  return counts.reduce((sum, value) => sum + value, 0);
}
