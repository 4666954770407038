import type { WindowCounter } from "./start-schedule.js";
import type { TaskTraceContext } from "./task-tracer.js";
import type { UserPolicy } from "./user-policy.js";

// The storage boundary: everything the core needs from where tasks live. The
// core (drainer, runner, progress, Submit's decision) depends on this
// interface only; src/redis implements it with atomic Lua scripts, so every
// multi-key change below happens whole or not at all.

export interface Submission {
  readonly userId: string;
  readonly payload: Uint8Array;
  readonly kind: string;
  readonly idempotencyKey: string;
  readonly rejectOverLimit: boolean;
  /** This process has a free slot; without one the task queues even when within the policy. */
  readonly canStartNow: boolean;
  /** Starts no earlier than this moment (ms); absent or past: now. */
  readonly notBefore?: number;
  /** Not started by this moment (ms), it ends expired; absent: no deadline. */
  readonly startBy?: number;
  /** Place in the user's queue: 0 to MAX_PRIORITY, higher first; absent: 0. */
  readonly priority?: number;
  /** W3C traceparent of the Submit span, stored with the task when tracing is on. */
  readonly traceparent?: string;
  /** Units of every window each attempt uses; absent: 1. */
  readonly cost?: number;
}

/** A task the drainer claimed: it is running under a lease now. */
export interface ClaimedTask {
  readonly taskId: string;
  readonly userId: string;
  readonly kind: string;
  readonly payload: Buffer;
  readonly attempt: number;
  /** The earliest moment the policy allowed this start (Redis clock, ms). */
  readonly dueAt: number;
  /** The claim that took it (see claim()). */
  readonly claimId: string;
  /** Its Submit's trace, when it was submitted with tracing on. */
  readonly trace?: TaskTraceContext | undefined;
}

/** Enough of a claimed or started task to hand it back with release(). */
export interface HeldTask {
  readonly taskId: string;
  readonly userId: string;
  readonly attempt: number;
  /** Checked against the task when given; a start at Submit has none. */
  readonly claimId?: string;
}

export interface ClaimResult {
  /** The partition claimed from. */
  readonly partition: number;
  /** Redis' clock when the claim ran, ms. */
  readonly now: number;
  readonly claimed: readonly ClaimedTask[];
  /** The next moments something in this partition needs the drainer (Redis clock, ms), if any. */
  readonly nextDue: number | undefined;
  readonly nextRetry: number | undefined;
  readonly nextLeaseExpiry: number | undefined;
  /** Tasks the claim dead-lettered: their lease ran out on the last attempt (their process is gone). */
  readonly deadLettered?: number;
  /** Tasks the claim ended expired: not started by their start_by. */
  readonly expired?: number;
  /** Tasks the claim ended cancelled: their lease ran out after CancelTask marked them. */
  readonly cancelled?: number;
}

/**
 * Counts for WatchQueue. Succeeded, failed and dead only ever grow within one
 * generation of the counters; a user's counters restart from zero in a new
 * generation once they were idle past the retention (see watch-counts.ts).
 */
export interface QueueSnapshot {
  /** Redis' clock when read, ms. */
  readonly now: number;
  /** Waiting in the queue, for a retry or for its not_before (delayed). */
  readonly queued: number;
  readonly running: number;
  readonly succeeded: number;
  /** Failed attempts. */
  readonly failed: number;
  readonly dead: number;
  /** Tasks that ended cancelled: while queued, delayed or waiting to retry, or running when marked (at its attempt's end). */
  readonly cancelled: number;
  /** Dead letters requeued. */
  readonly requeued: number;
  /** Ended expired (not started by their start_by); absent: 0. */
  readonly expired?: number;
  /**
   * Which generation of the counters these are: it changes when they restart
   * from zero (a user's counters expired while idle and were made anew); -1
   * while they do not exist. Always the same for every-queue counts.
   */
  readonly generation: number;
  /** When the user's head task is due (the drainer's schedule). */
  readonly dueAt: number | undefined;
  /** The user's queue is paused (PauseQueue); absent (not paused) for the every-queue snapshot. */
  readonly paused?: boolean;
  /** The user's windows, those of `policy`; undefined for the every-queue snapshot. */
  readonly windows: WindowCounter[] | undefined;
  /** The user's effective policy when read; absent for the every-queue snapshot. */
  readonly policy?: UserPolicy;
}

/** An attempt's outcome; a failure with `retry: false` is dead-lettered at once, whatever attempts remain. */
export type AttemptResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly error: string; readonly retry?: false };

/** "cancelled": its cancel was requested while it ran, so it ended cancelled whatever the attempt did. */
export type FinishOutcome = "succeeded" | "retry-scheduled" | "dead" | "cancelled" | "lease-lost";

/**
 * What release did: handed the task back to its queue; ended it cancelled
 * (its cancel was requested while it ran); or nothing, its lease was no
 * longer this attempt's.
 */
export type ReleaseOutcome = "released" | "cancelled" | "lease-lost";

/**
 * What admit decided, with the user's effective policy (resolved in the same
 * step) and its windows as they were after it.
 */
export type Admission =
  | {
      readonly outcome: "started";
      readonly taskId: string;
      readonly now: number;
      readonly windows: WindowCounter[];
      /** The user's effective policy; absent: the host's (a store with no per-user policies). */
      readonly policy?: UserPolicy;
    }
  | {
      readonly outcome: "queued";
      readonly taskId: string;
      readonly position: number;
      readonly now: number;
      readonly windows: WindowCounter[];
      /** The user's effective policy; absent: the host's (a store with no per-user policies). */
      readonly policy?: UserPolicy;
    }
  | { readonly outcome: "duplicate"; readonly taskId: string; readonly now: number }
  | {
      readonly outcome: "over-limit" | "backlog-full";
      readonly queued: number;
      readonly now: number;
      readonly windows: WindowCounter[];
      /** The user's effective policy; absent: the host's (a store with no per-user policies). */
      readonly policy?: UserPolicy;
    }
  /** The cost is above the limit of the policy's window `window` (0-based): it could never start. Nothing stored. */
  | { readonly outcome: "cost-too-high"; readonly window: number; readonly now: number; readonly policy: UserPolicy }
  /** Reject mode and the user's queue is paused: nothing stored. */
  | { readonly outcome: "paused"; readonly queued: number; readonly now: number };

/**
 * admit sent its script but got no reply (Redis stalled past the command
 * timeout, or the connection dropped), and then read the task's record:
 * `stored` is "no" when the record showed nothing was stored, "unknown" when
 * Redis did not answer that read in time either.
 */
export class AdmitReplyLost extends Error {
  override readonly name = "AdmitReplyLost";
  constructor(
    readonly taskId: string,
    readonly stored: "no" | "unknown",
    override readonly cause: unknown,
  ) {
    super(
      `admit of task ${taskId} got no reply (${cause instanceof Error ? cause.message : String(cause)}); stored: ${stored}`,
    );
  }
}

/**
 * admit stored the task (or found it stored: a duplicate) on the store's
 * primary, but fewer replicas than required confirmed it in time
 * (TOLLGATE_REPLICA_ACKS): it is kept unless the primary is lost before a
 * replica has it. `admission` is what was stored; a task it says started
 * holds this process's lease and slot.
 */
export class NotReplicated extends Error {
  override readonly name = "NotReplicated";
  constructor(
    readonly admission: Extract<Admission, { readonly taskId: string }>,
    readonly replicas: number,
    readonly required: number,
  ) {
    super(
      `task ${admission.taskId} is stored but only ${replicas} of the ${required} required replicas confirmed it in time`,
    );
  }
}

export type TaskStateName = "queued" | "running" | "succeeded" | "failed" | "dead" | "cancelled" | "expired";

export interface TaskRecord {
  readonly taskId: string;
  readonly userId: string;
  readonly kind: string;
  readonly payload: Buffer;
  readonly state: TaskStateName;
  readonly attempts: number;
  readonly submittedAt: number;
  readonly startedAt: number | undefined;
  readonly finishedAt: number | undefined;
  /** Submit's not_before, when it delayed the task (ms). */
  readonly notBefore?: number | undefined;
  /** Submit's start_by (ms). */
  readonly startBy?: number | undefined;
  /** Submit's priority (0 when it gave none). */
  readonly priority: number;
  readonly lastError: string;
}

/**
 * What cancelTask did: cancelled it now; marked a running task, whose
 * attempt then ends it cancelled ("cancel-requested"); or found it cancelled
 * before, finished (succeeded or dead), or gone (or another user's), and
 * changed nothing.
 */
export type CancelOutcome =
  | "cancelled"
  | "cancel-requested"
  | "already-cancelled"
  | "succeeded"
  | "dead"
  | "expired"
  | "not-found";

/** Which of a user's tasks listTasks lists. */
export type ListState = "queued" | "running" | "dead";

export interface ListOptions {
  /** At most this many tasks (at least 1). */
  readonly pageSize: number;
  /** The cursor of the page before (its `next`); undefined for the first page. */
  readonly after: string | undefined;
}

/** A listed task: its record, and for a queued task in a queued listing its 1-based queue position. */
export interface ListedTask extends TaskRecord {
  /** 1-based place in the queue; 0 when not listed as queued. */
  readonly position: number;
}

export interface ListPage {
  readonly tasks: readonly ListedTask[];
  /**
   * Where the next page starts: the id of the last task this page looked at
   * (a task id, so it holds no ":"); undefined when nothing follows.
   */
  readonly next: string | undefined;
}

/** One user's counts, as listQueues reads them. */
export interface QueueSummary {
  readonly userId: string;
  /** Tasks in the user's queue. */
  readonly queued: number;
  readonly running: number;
  readonly waitingToRetry: number;
  /** Tasks on the user's dead-letter list. */
  readonly dead: number;
  readonly paused: boolean;
}

/** What requeueDeadLetters or purgeDeadLetters did. */
export interface DeadLetterResult {
  /** Dead letters requeued (or purged). */
  readonly done: number;
  /**
   * Ids not on the user's dead-letter list, in the order asked; for a
   * requeue also ids on it whose record had expired (they left the list).
   */
  readonly notFound: readonly string[];
}

/** The dead letters to requeue or purge: these ids, or every one on the list. */
export type DeadLetterSelection = readonly string[] | "all";

/**
 * The store cannot serve now: it is unreachable (down, a dropped connection,
 * a command not answered in time, "not now" replies while it loads or fails
 * over), or it is full and refuses writes. Nothing the call would have
 * written was written, except where a caller learns otherwise (see
 * AdmitReplyLost). A retry later may succeed.
 */
export class StoreUnavailable extends Error {
  override readonly name = "StoreUnavailable";
  constructor(
    readonly reason: "unreachable" | "full",
    override readonly cause: unknown,
  ) {
    super(`the task store is ${reason}: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}

/**
 * Stops a subscription; idempotent.
 */
export type Unsubscribe = () => Promise<void>;

/**
 * A user of `partition` became due at `dueAt` (the store's clock, ms); with
 * `kind`, one was parked for claimers of that kind (see Claimer).
 */
export interface Wake {
  readonly partition: number;
  readonly dueAt: number;
  readonly kind?: string;
}

/**
 * What a claim may take. A claimer that routes (a server's own drainer)
 * claims due users whose head task is of one of its kinds and parks the
 * others under their head's kind, waking claimers of that kind; it also
 * recovers expired leases, due retries and delayed tasks. A claimer that
 * does not route (the remote workers of some kinds connected to a server)
 * claims only users parked under its kinds. Every claimer claims users
 * parked under its kinds. The empty kind is never parked.
 */
export interface Claimer {
  readonly kinds: readonly string[];
  readonly routes: boolean;
}

/** A claimer that runs every kind, so parks nothing. */
export const EVERY_KIND: Claimer = Object.freeze({ kinds: ["*"], routes: true });

/**
 * A wake-up from any process; undefined when wakes may have been missed
 * (e.g. after a reconnect), so the listener should look again at every
 * partition now.
 */
export type WakeListener = (wake: Wake | undefined) => void;

/** A running task, as renew() needs it. */
export interface LeasedTask {
  readonly taskId: string;
  readonly userId: string;
}

/** Something about `userId`'s queue changed (a submit, a start, an end). */
export type ProgressListener = (userId: string) => void;

/** CancelTask marked a running task (its id): the process running it should abort its handler. */
export type CancelListener = (taskId: string) => void;

/** Whether the store is reachable: told at once, then at every change. */
export type AvailabilityListener = (available: boolean) => void;

/** Where tasks, queues, leases and windows live, shared by every process and host. */
export interface TaskStore {
  /**
   * Users are spread over this many partitions (0 … partitions − 1), fixed
   * for the life of the data. Claims, their records and wake-ups are per
   * partition; a drainer claims from every one.
   */
  readonly partitions: number;
  /** Decides start-now, queue or reject for one task and stores it, in one atomic step. */
  admit(submission: Submission): Promise<Admission>;
  /**
   * In one partition: recovers expired leases and due retries, then claims
   * up to `maxClaims` due tasks, users earliest-due first. `claimId` marks
   * what it took, so that claimedBy() can tell a caller who did not see the
   * reply. `claimer` says which kinds the caller runs (default: every kind).
   */
  claim(partition: number, maxClaims: number, claimId: string, claimer?: Claimer): Promise<ClaimResult>;
  /** What the claim `claimId` in `partition` took, for a caller whose reply was lost. */
  claimedBy(partition: number, claimId: string): Promise<HeldTask[]>;
  /** Records the end of one attempt and releases its lease. */
  finish(
    task: { readonly taskId: string; readonly userId: string; readonly attempt: number },
    result: AttemptResult,
    retryDelayMs: number,
  ): Promise<FinishOutcome>;
  /**
   * Hands a held task back to the head of its queue, its attempt not
   * counted (or ends it cancelled, when its cancel was requested);
   * "lease-lost" when its lease was gone.
   */
  release(task: HeldTask): Promise<ReleaseOutcome>;
  /** Extends the leases of tasks still running here; returns how many were extended. */
  renew(tasks: readonly LeasedTask[]): Promise<number>;
  getTask(taskId: string): Promise<TaskRecord | undefined>;
  /**
   * A page of one user's tasks in one state: queued (queue order, with
   * positions), running (by start) or dead-lettered (newest first). Each page
   * continues after `options.after`, so a task that stays in the list is never
   * skipped while the list changes between pages; records that expired are
   * left out.
   */
  listTasks(userId: string, state: ListState, options: ListOptions): Promise<ListPage>;
  /**
   * Cancels one of `task.userId`'s tasks if it is queued (it leaves the
   * queue, the next taking its place) or waiting to retry (it leaves the
   * retry schedule): its record ends cancelled and expires the retention
   * after, as a finished task's. A running task is marked: its attempt's
   * end (finish, release, or a lost lease) ends it cancelled, neither retried
   * nor dead-lettered. Any other task is left as it is.
   */
  cancelTask(task: { readonly taskId: string; readonly userId: string }): Promise<CancelOutcome>;
  /** Cancels every queued task of the user and every one waiting to retry, as cancelTask; returns how many. */
  purgeQueue(userId: string): Promise<number>;
  /**
   * Puts dead letters of `userId` back at the tail of the user's queue with
   * fresh attempts (queued, no attempts, error or end, no expiry), scheduling
   * the user when its queue was empty; they leave the dead-letter list. The
   * backlog cap does not apply. "all": every id on the list when the call
   * began, oldest first, in batches (not atomic as a whole; each batch is).
   */
  requeueDeadLetters(userId: string, tasks: DeadLetterSelection): Promise<DeadLetterResult>;
  /** Deletes dead letters of `userId`: off the list, their records deleted. "all" as for requeueDeadLetters. */
  purgeDeadLetters(userId: string, tasks: DeadLetterSelection): Promise<DeadLetterResult>;
  /**
   * Pauses the user's queue: nothing of the user starts until resumeQueue
   * (admit queues, claim skips it). Idempotent. Returns how many tasks wait
   * to start (queued or waiting to retry).
   */
  pauseQueue(userId: string): Promise<{ readonly queued: number }>;
  /**
   * Resumes the user's queue: its head is due again when every window has
   * room, as a new head is. Idempotent. Returns how many tasks wait to start.
   */
  resumeQueue(userId: string): Promise<{ readonly queued: number }>;
  /**
   * Every user with a task queued, running or waiting to retry, a dead
   * letter, or a paused queue, with its counts; in no order. Reads every
   * partition (each partition's counts together, the partitions one after
   * another or at once, not as one snapshot); costs O(users listed), and
   * finding users with only dead letters may cost more (the Redis store
   * scans the keyspace).
   */
  listQueues(): Promise<QueueSummary[]>;
  /** One user's counts and windows, read together. */
  snapshot(userId: string): Promise<QueueSnapshot>;
  /** Every queue's counts together (the sum over the partitions). */
  snapshotAll(): Promise<QueueSnapshot>;
  /** How many users have a queued task scheduled, over every partition. */
  dueUserCount(): Promise<number>;
  /** Dead letters dropped at their list's cap (with their records) since the data began. */
  droppedDeadLetters(): Promise<number>;
  /**
   * Calls `listener` at every wake-up published by any process, in any
   * partition; resolves once subscribed. Rejects (StoreUnavailable) when the store cannot be reached,
   * leaving nothing behind, so a later call subscribes afresh.
   */
  onWake(listener: WakeListener): Promise<Unsubscribe>;
  /** Calls `listener` at every progress event of any queue; as onWake otherwise. */
  onProgress(listener: ProgressListener): Promise<Unsubscribe>;
  /**
   * Calls `listener` whenever CancelTask marks a running task, on any
   * process; as onWake otherwise. A message missed (a reconnect) leaves the
   * handler running to its end; the task ends cancelled all the same.
   */
  onCancel(listener: CancelListener): Promise<Unsubscribe>;
  /**
   * Calls `listener` now with whether the store is reachable, then whenever
   * that changes; returns the way to stop (idempotent).
   */
  onAvailability(listener: AvailabilityListener): () => void;
}
