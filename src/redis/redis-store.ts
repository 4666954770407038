import { systemClock, type Clock } from "../core/clock.js";
import {
  leaseMember,
  parseLeaseMember,
  sumOver,
  TASK_FIELD,
  TASK_STATE,
  type Keys,
  type PartitionKeys,
} from "./keys.js";
import { ADMIT, CANCEL, FINISH, RELEASE } from "./reply-codes.js";
import { LuaScript, type RedisArg } from "./lua-script.js";
import { countersFromReply, windowSeconds, type RateWindows } from "./rate-windows.js";
import { KnownPolicies } from "./known-policies.js";
import { RedisPolicyStore } from "./redis-policy-store.js";
import { RedisWorkerDirectory } from "./worker-directory.js";
import type { UserPolicy } from "../core/user-policy.js";
import type { RatePolicy } from "../core/rate-policy.js";
import { GlobalLimit, type Reservation } from "./global-limit.js";
import { commandTimeoutOf, kindOf, mastersOf, type RedisClient } from "./connection.js";
import { isUnanswered, storeCall } from "./errors.js";
import { Subscriptions } from "./subscriptions.js";
import { Availability } from "./availability.js";
import { newTaskId } from "../core/task-id.js";
import {
  AdmitReplyLost,
  NotReplicated,
  EVERY_KIND,
  type Admission,
  type AttemptResult,
  type CancelOutcome,
  type Claimer,
  type ClaimResult,
  type ClaimedTask,
  type DeadLetterResult,
  type DeadLetterSelection,
  type FinishOutcome,
  type ReleaseOutcome,
  type HeldTask,
  type LeasedTask,
  type ListedTask,
  type ListOptions,
  type ListPage,
  type ListState,
  type QueueSnapshot,
  type QueueSummary,
  type AvailabilityListener,
  type CancelListener,
  type ProgressListener,
  type Submission,
  type TaskRecord,
  type TaskStateName,
  type TaskStore,
  type Unsubscribe,
  type WakeListener,
} from "../core/store.js";

/**
 * After admit's reply is lost, how long (in command timeouts) to keep reading
 * the task's record while Redis is connected but slow. A stall that long is
 * an outage; the caller is then told the outcome is unknown.
 */
const OUTCOME_WAIT_COMMAND_TIMEOUTS = 3;
/** Pause between reads of the record when Redis answered one with an error (BUSY, LOADING). */
const OUTCOME_RETRY_PAUSE_MS = 50;

export interface RedisStoreOptions {
  readonly maxBacklog: number;
  readonly leaseMs: number;
  readonly maxAttempts: number;
  /** Dead letters kept per user; the oldest past it are deleted (with their records). */
  readonly deadLetterCap: number;
  /**
   * How long a succeeded task's record, an idempotency key and the counters
   * of a user with nothing running or waiting to retry are kept, seconds.
   */
  readonly retentionSeconds: number;
  /** How long a dead-lettered task's record (and its user's list, after its newest) is kept, seconds. */
  readonly deadLetterRetentionSeconds: number;
  /** Paces admit's wait for a lost reply's outcome; the system clock by default. */
  readonly clock?: Clock;
  /** The host's TOLLGATE_GLOBAL_LIMITS: windows over every user together (empty or absent: none unless stored). */
  readonly globalPolicy?: RatePolicy;
  /** Replicas that must confirm each state change (WAIT after its script); 0: none. */
  readonly replicaAcks?: number;
  /** How long WAIT may take. */
  readonly replicaAckTimeoutMs?: number;
  /**
   * Told of every change that WAIT left short of its replicas (made on the
   * primary all the same), so the operator can see a replica falling behind:
   * Submit says so to its caller, claims, finishes and releases go on.
   */
  readonly onShortOfReplicas?: (change: StateChange, replicas: number, required: number) => void;
}

/** The scripts that change tasks' state, each followed by WAIT with replica acks. */
export type StateChange =
  | "admit"
  | "claim"
  | "finish"
  | "release"
  | "trim-dead-letters"
  | "requeue-dead-letters"
  | "purge-dead-letters"
  | "cancel"
  | "pause"
  | "resume";

const FINISH_OUTCOMES: ReadonlyMap<number, FinishOutcome> = new Map([
  [FINISH.LEASE_LOST, "lease-lost"],
  [FINISH.SUCCEEDED, "succeeded"],
  [FINISH.RETRY_SCHEDULED, "retry-scheduled"],
  [FINISH.DEAD, "dead"],
  [FINISH.DEAD_OVER_CAP, "dead"],
  [FINISH.CANCELLED, "cancelled"],
]);

const STATE_NAMES: Readonly<Record<string, TaskStateName>> = {
  [TASK_STATE.QUEUED]: "queued",
  [TASK_STATE.RUNNING]: "running",
  [TASK_STATE.SUCCEEDED]: "succeeded",
  [TASK_STATE.FAILED]: "failed",
  [TASK_STATE.DEAD]: "dead",
  [TASK_STATE.CANCELLED]: "cancelled",
  [TASK_STATE.EXPIRED]: "expired",
};

const CANCEL_OUTCOMES: ReadonlyMap<number, CancelOutcome> = new Map([
  [CANCEL.NOT_FOUND, "not-found"],
  [CANCEL.CANCELLED, "cancelled"],
  [CANCEL.ALREADY_CANCELLED, "already-cancelled"],
  [CANCEL.CANCEL_REQUESTED, "cancel-requested"],
  [CANCEL.SUCCEEDED, "succeeded"],
  [CANCEL.DEAD, "dead"],
  [CANCEL.EXPIRED, "expired"],
]);

const scripts = {
  admit: new LuaScript("admit-n.lua"),
  admitOutcome: new LuaScript("admit-outcome-n.lua"),
  claimPlan: new LuaScript("claim-plan-8.lua"),
  claim: new LuaScript("claim-n.lua"),
  finish: new LuaScript("finish-7.lua"),
  snapshot: new LuaScript("snapshot-n.lua"),
  snapshotAll: new LuaScript("snapshot-all-3.lua"),
  renew: new LuaScript("renew-1.lua"),
  release: new LuaScript("release-7.lua"),
  trimDeadLetters: new LuaScript("trim-dead-letters-n.lua"),
  cancel: new LuaScript("cancel-n.lua"),
  requeueDeadLetters: new LuaScript("requeue-dead-letters-n.lua"),
  purgeDeadLetters: new LuaScript("purge-dead-letters-n.lua"),
  pause: new LuaScript("pause-4.lua"),
  resume: new LuaScript("resume-n.lua"),
};

/** A task's record from its hash's fields (TASK_FIELD); undefined when the hash is gone. */
function taskRecordOf(taskId: string, fields: Record<string, Buffer> | null | undefined): TaskRecord | undefined {
  if (!fields || Object.keys(fields).length === 0) return undefined;
  const text = (name: string): string => fields[name]?.toString("utf8") ?? "";
  const time = (name: string): number | undefined => (fields[name] ? Number(text(name)) : undefined);
  return {
    taskId,
    userId: text(TASK_FIELD.USER),
    kind: text(TASK_FIELD.KIND),
    payload: fields[TASK_FIELD.PAYLOAD] ?? Buffer.alloc(0),
    state: STATE_NAMES[text(TASK_FIELD.STATE)] ?? "queued",
    attempts: Number(text(TASK_FIELD.ATTEMPTS) || "0"),
    submittedAt: time(TASK_FIELD.SUBMITTED) ?? 0,
    startedAt: time(TASK_FIELD.STARTED),
    finishedAt: time(TASK_FIELD.FINISHED),
    notBefore: time(TASK_FIELD.NOT_BEFORE),
    startBy: time(TASK_FIELD.START_BY),
    priority: Number(text(TASK_FIELD.PRIORITY) || "0"),
    lastError: text(TASK_FIELD.ERROR),
  };
}

/** Keys SCAN is asked to look at per call (COUNT) when ListQueues looks for dead-letter lists. */
const SCAN_COUNT = 1_000;

/** Tasks PurgeQueue cancels per script (each record is a declared key). */
const PURGE_BATCH = 100;

/** Dead letters past the cap dropped per trim step (each is a declared key). */
const TRIM_BATCH = 500;

/** Dead letters requeued or purged per script call (each is a declared key). */
const DEAD_LETTER_BATCH = 100;

/**
 * How long a claim's record is kept for a caller whose client timed out: it
 * reads it back on its next step, at most seconds later even while Redis is
 * slow (drainer back-off tops at 5 s); leases cover anything later. Short,
 * since every claim that takes something writes one.
 */
const CLAIM_RECORD_MS = 15_000;

/**
 * Expired leases, and due retries, a claim step recovers at most (each is
 * declared to the claim script with its user's keys); more wait for the
 * next step, which the claim's reply schedules at once.
 */
const RECOVERIES_PER_CLAIM = 100;

type PublishCommand = "PUBLISH" | "SPUBLISH";

/** A pipeline's replies, in order; the first command's error, if any, is thrown. */
async function execPipeline(pipeline: ReturnType<RedisClient["pipeline"]>): Promise<unknown[]> {
  const results = (await pipeline.exec()) ?? [];
  return results.map(([error, reply]) => {
    if (error) throw error;
    return reply;
  });
}

/** How many lease (or retry) members each user has. */
function countUsers(members: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const member of members) {
    const { userId } = parseLeaseMember(member);
    counts.set(userId, (counts.get(userId) ?? 0) + 1);
  }
  return counts;
}

/** The task store in Redis: per-user queues, task records, leases, windows and counters. */
export class RedisStore implements TaskStore {
  /** Wake-ups and progress events, over one subscriber connection made on first use. */
  private readonly subscriptions: Subscriptions;
  /** For health: the client's state, and on a Cluster the slot's (see Availability). */
  private readonly availability: Availability;

  /**
   * How the scripts publish wake-ups and progress: on a Cluster sharded
   * pub/sub (SPUBLISH, Redis 7), so a message goes to the partition's shard
   * only instead of every node; elsewhere PUBLISH (Redis 6.2 has no other).
   */
  private readonly publish: PublishCommand;
  readonly partitions: number;
  /** Plans and users' policies (PolicyService's store), in the same Redis. */
  readonly policies: RedisPolicyStore;
  /** Each user's policy as last seen: which window counters to declare (known-policies.ts). */
  private readonly known: KnownPolicies;
  /** Windows over every user together, reserved before each start (global-limit.ts). */
  readonly global: GlobalLimit;
  /** The workers connected to every host (WorkerService), in the same Redis. */
  readonly workers: RedisWorkerDirectory;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly windows: RateWindows,
    private readonly options: RedisStoreOptions,
  ) {
    this.partitions = keys.partitions;
    this.publish = kindOf(redis) === "cluster" ? "SPUBLISH" : "PUBLISH";
    this.subscriptions = new Subscriptions(redis, "tollgate-wake");
    // The probe is a keyed command, so on a Cluster it asks a slot's master.
    this.availability = new Availability(redis, () => redis.exists(keys.partition(0).totals));
    this.global = new GlobalLimit(redis, keys.global, options.globalPolicy ?? [], options.clock ?? systemClock);
    this.policies = new RedisPolicyStore(redis, keys, windows, this.global);
    this.known = new KnownPolicies({ windows: windows.policy, maxRunning: 0 });
    this.workers = new RedisWorkerDirectory(redis, keys.workers, options.clock ?? systemClock);
  }

  /** The policy a script found for the user (includes/policy), remembered for the next call. */
  private learnPolicy(userId: string, spec: unknown): UserPolicy {
    return this.known.learn(userId, String(spec));
  }

  /** Decides start-now, queue or reject for one task and stores it: one round trip. */
  async admit(submission: Submission): Promise<Admission> {
    const { userId } = submission;
    const partition = this.keys.forUser(userId);
    const taskId = newTaskId(partition.partition);
    // The script resolves the user's policy; the counters declared are those
    // of the policy last seen, and a changed policy is learnt and run again
    // (twice is enough unless it changes again meanwhile).
    // A start now needs a unit of the global windows too, taken first (they
    // are in another slot); without one the task queues, and the claim that
    // starts it takes its unit in turn.
    const reservation = submission.canStartNow
      ? await this.tracked(() => this.global.reserve("", [(this.options.clock ?? systemClock).now()]))
      : undefined;
    const admitted = reservation?.granted === 0 ? { ...submission, canStartNow: false } : submission;
    for (let attempt = 1; ; attempt++) {
      const guess = this.known.of(userId);
      // A throw keeps the unit: the task may have started (a reply lost, or short of replicas).
      const answer = await this.admitWith(admitted, partition, taskId, guess);
      if (answer !== "policy-changed") {
        // Known not started (queued, refused, a duplicate): the unit goes back.
        if (reservation && answer.outcome !== "started") await reservation.refund(1);
        return answer;
      }
      if (attempt >= 3) {
        await reservation?.refund(1);
        throw new Error(`the policy of user ${userId} kept changing while a Submit ran`);
      }
    }
  }

  private async admitWith(
    submission: Submission,
    partition: PartitionKeys,
    taskId: string,
    guess: UserPolicy,
  ): Promise<Admission | "policy-changed"> {
    const { userId } = submission;
    const keys = [
      partition.queue(userId),
      partition.dueUsers,
      partition.task(taskId),
      partition.idempotency(userId, submission.idempotencyKey),
      partition.leases,
      partition.stats(userId),
      partition.totals,
      partition.heads,
      partition.paused,
      partition.delayed,
      partition.policies,
      partition.plans,
      partition.parked,
      partition.parkedUsers,
      ...this.windows.keysFor(userId, guess.windows),
    ];
    const args = [
      taskId,
      userId,
      Buffer.from(submission.payload.buffer, submission.payload.byteOffset, submission.payload.byteLength),
      submission.idempotencyKey,
      submission.kind,
      submission.rejectOverLimit ? "reject" : "queue",
      this.options.maxBacklog,
      this.options.retentionSeconds,
      this.options.leaseMs,
      submission.canStartNow ? "1" : "0",
      partition.wakeChannel,
      partition.progressChannel,
      this.publish,
      submission.notBefore ?? 0,
      submission.startBy ?? "",
      this.policies.fallbackSpec,
      submission.cost ?? 1,
      submission.priority ?? 0,
      submission.traceparent ?? "",
      ...windowSeconds(guess.windows),
    ];
    let changed: { readonly reply: unknown; readonly replicas: number; readonly replicated: boolean };
    try {
      changed = await this.change("admit", scripts.admit, keys, args);
    } catch (error) {
      // The script may have run: answering "nothing stored" could be a lie
      // that a retry turns into a duplicate, and a task stored as running
      // would wait out its lease. The id was made here, so its record tells.
      if (!isUnanswered(error)) throw error;
      return this.admitOutcome(partition, taskId, userId, error, guess);
    }
    const reply = changed.reply as unknown[];
    if (Number(reply[0]) === ADMIT.POLICY_CHANGED) {
      this.learnPolicy(userId, reply[4]);
      return "policy-changed";
    }
    const admission = this.admission(userId, reply);
    // Started, queued and duplicate answer "the task is stored"; a refusal
    // stored nothing, so what the replicas have does not matter to it.
    if (!changed.replicated && "taskId" in admission) {
      throw new NotReplicated(admission, changed.replicas, this.options.replicaAcks ?? 0);
    }
    return admission;
  }

  private admission(userId: string, reply: unknown[]): Admission {
    const [outcome, id, n, nowValue, spec] = reply;
    const now = Number(nowValue);
    if (Number(outcome) === ADMIT.DUPLICATE) return { outcome: "duplicate", taskId: String(id), now };
    const policy = this.learnPolicy(userId, spec);
    const windows = countersFromReply(reply.slice(5), now);
    switch (Number(outcome)) {
      case ADMIT.STARTED:
        return { outcome: "started", taskId: String(id), now, windows, policy };
      case ADMIT.QUEUED:
        return { outcome: "queued", taskId: String(id), position: Number(n), now, windows, policy };
      case ADMIT.OVER_LIMIT:
        return { outcome: "over-limit", queued: Number(n), now, windows, policy };
      case ADMIT.BACKLOG_FULL:
        return { outcome: "backlog-full", queued: Number(n), now, windows, policy };
      case ADMIT.COST_TOO_HIGH:
        return { outcome: "cost-too-high", window: Number(n) - 1, now, policy };
      case ADMIT.PAUSED:
        return { outcome: "paused", queued: Number(n), now };
      default:
        throw new Error(`admit script replied with unknown outcome ${String(outcome)}`);
    }
  }

  /**
   * Runs a script that changes tasks' state. With replica acks, WAIT follows
   * it on the same connection (see LuaScript.runAndWait): the caller answers
   * or goes on only once the replicas have the change, or the timeout passed
   * (`replicated` false; the change is on the primary all the same).
   */
  private async change(
    change: StateChange,
    script: LuaScript,
    keys: readonly string[],
    args: readonly RedisArg[],
    buffers = false,
  ): Promise<{ readonly reply: unknown; readonly replicas: number; readonly replicated: boolean }> {
    const changed = await this.tracked(() => this.runChange(script, keys, args, buffers));
    if (!changed.replicated) this.options.onShortOfReplicas?.(change, changed.replicas, this.options.replicaAcks ?? 0);
    return changed;
  }

  private async runChange(
    script: LuaScript,
    keys: readonly string[],
    args: readonly RedisArg[],
    buffers: boolean,
  ): Promise<{ readonly reply: unknown; readonly replicas: number; readonly replicated: boolean }> {
    const required = this.options.replicaAcks ?? 0;
    if (required === 0) {
      const reply = await (buffers ? script.runBuffer(this.redis, keys, args) : script.run(this.redis, keys, args));
      return { reply, replicas: 0, replicated: true };
    }
    const { reply, replicas } = await script.runAndWait(
      this.redis,
      keys,
      args,
      { replicas: required, timeoutMs: this.options.replicaAckTimeoutMs ?? 1_000 },
      buffers,
    );
    return { reply, replicas, replicated: replicas >= required };
  }

  /** Runs a store command, telling availability how it went (a Cluster's slot may be down while the client is ready). */
  private async tracked<T>(command: () => Promise<T>): Promise<T> {
    try {
      const result = await command();
      this.availability.commandSucceeded();
      return result;
    } catch (error) {
      this.availability.commandFailed(error);
      throw error;
    }
  }

  /**
   * What an admit whose reply was lost did, read from the task's record on
   * the same connection: Redis serves a connection in order, so the read is
   * answered only after the admit script ran (if it ran). Read again while
   * Redis is connected but slow, for a few command timeouts; then, or at once
   * when the connection is down, the outcome is unknown.
   */
  private async admitOutcome(
    partition: PartitionKeys,
    taskId: string,
    userId: string,
    lost: unknown,
    policy: UserPolicy,
  ): Promise<Admission> {
    const clock = this.options.clock ?? systemClock;
    const deadline = clock.now() + OUTCOME_WAIT_COMMAND_TIMEOUTS * commandTimeoutOf(this.redis);
    for (;;) {
      let reply: unknown[];
      try {
        reply = (await scripts.admitOutcome.run(
          this.redis,
          [partition.task(taskId), partition.queue(userId), ...this.windows.keysFor(userId, policy.windows)],
          [taskId],
        )) as unknown[];
      } catch (error) {
        // Unreachable: the outcome can be learnt only after reconnecting,
        // and a Submit should not hang through an outage.
        if (this.redis.status !== "ready" || clock.now() >= deadline) throw new AdmitReplyLost(taskId, "unknown", lost);
        // A timed-out read has waited already; Redis' own "not now" has not.
        if (!isUnanswered(error)) await new Promise<void>((resolve) => clock.setTimer(resolve, OUTCOME_RETRY_PAUSE_MS));
        continue;
      }
      const [state, attempts, byAdmit, startedAt, position, nowValue] = reply;
      const now = Number(nowValue);
      const windows = countersFromReply(reply.slice(6), now);
      if (state === "") throw new AdmitReplyLost(taskId, "no", lost);
      // Started by admit and still on its first attempt: the lease is the
      // admitting process's, which must run it now.
      if (state === TASK_STATE.RUNNING && Number(byAdmit) === 1 && Number(attempts) === 1) {
        return { outcome: "started", taskId, now: Number(startedAt), windows, policy };
      }
      // Queued, or (the lease ran out or a drainer claimed it while we
      // waited) already out of the queue: position 0. Either way it is
      // stored and the drainers run it.
      return { outcome: "queued", taskId, position: Number(position), now, windows, policy };
    }
  }

  /**
   * In one partition: recovers expired leases and due retries, then claims
   * up to `maxClaims` due tasks, users earliest-due first. Two round trips
   * when there is something to do (one to learn whose keys the claim needs,
   * one to claim with them declared), one when there is not. `claimId`
   * (unique per call) marks what it took, so that claimedBy() can tell a
   * caller who did not see the reply.
   */
  async claim(
    partitionNumber: number,
    maxClaims: number,
    claimId: string,
    claimer: Claimer = EVERY_KIND,
  ): Promise<ClaimResult> {
    const partition = this.keys.partition(partitionNumber);
    const routes = claimer.routes ? "1" : "0";
    const kinds = claimer.kinds.filter((kind) => kind !== "").join(",");
    const plan = (await this.tracked(() =>
      scripts.claimPlan.run(
        this.redis,
        [
          partition.dueUsers,
          partition.leases,
          partition.retries,
          partition.heads,
          partition.delayed,
          partition.policies,
          partition.plans,
          partition.parked,
        ],
        [maxClaims, RECOVERIES_PER_CLAIM, this.policies.fallbackSpec, routes, kinds],
      ),
    )) as (string | number)[];
    const userIds: string[] = [];
    const userNumbers = new Map<string, number>();
    const userNumber = (userId: string): number => {
      let number = userNumbers.get(userId);
      if (number === undefined) {
        userIds.push(userId);
        number = userIds.length;
        userNumbers.set(userId, number);
      }
      return number;
    };
    const items: {
      readonly kind: "lease" | "retry" | "delayed" | "head" | "parked";
      readonly taskId: string;
      readonly user: number;
    }[] = [];
    let at = 4;
    for (const kind of ["head", "parked"] as const) {
      const users = Number(plan[at++]);
      for (let i = 0; i < users; i++, at += 2) {
        items.push({ kind, taskId: String(plan[at + 1]), user: userNumber(String(plan[at])) });
      }
    }
    for (const kind of ["lease", "retry", "delayed"] as const) {
      const members = Number(plan[at++]);
      for (let i = 0; i < members; i++, at++) {
        const { taskId, userId } = parseLeaseMember(String(plan[at]));
        items.push({ kind, taskId, user: userNumber(userId) });
      }
    }
    // Each named user's policy, resolved by the plan: its window counters are declared below.
    const policyCount = Number(plan[at++]);
    const dueAt = new Map<string, number>();
    for (let i = 0; i < policyCount; i++, at += 3) {
      this.learnPolicy(String(plan[at]), plan[at + 1]);
      dueAt.set(String(plan[at]), Number(plan[at + 2]));
    }
    if (items.length === 0) return this.claimResult(partitionNumber, plan.slice(0, 4), claimId);
    // One start per user at most in a step, so a unit of the global windows
    // per user, asked for with each one's due moment in the order the claim
    // takes them (due users earliest first, then users whose recovered task
    // is due now): units go to whoever has waited longest, in any partition.
    const now = Number(plan[0]);
    const dues = userIds.map((userId) => dueAt.get(userId) ?? -1).map((due) => (due >= 0 ? due : now));
    const wanted = Math.min(maxClaims, dues.length);
    const reservation: Reservation | undefined =
      wanted > 0
        ? await this.tracked(() => this.global.reserve(String(partitionNumber), dues.slice(0, wanted)))
        : undefined;
    const claimsAllowed = reservation ? reservation.granted : maxClaims;

    const keys = [
      partition.dueUsers,
      partition.leases,
      partition.retries,
      partition.totals,
      partition.heads,
      partition.claim(claimId),
      partition.paused,
      partition.delayed,
      partition.policies,
      partition.plans,
      partition.parked,
      partition.parkedUsers,
    ];
    const userArgs: RedisArg[] = [];
    for (const userId of userIds) {
      const { windows } = this.known.of(userId);
      keys.push(partition.queue(userId), partition.stats(userId), partition.deadLetters(userId));
      keys.push(...this.windows.keysFor(userId, windows));
      userArgs.push(userId, windows.length, ...windowSeconds(windows));
    }
    const args: RedisArg[] = [
      claimsAllowed,
      this.options.leaseMs,
      this.options.maxAttempts,
      this.options.deadLetterCap,
      partition.progressChannel,
      this.publish,
      claimId,
      CLAIM_RECORD_MS,
      this.options.retentionSeconds,
      this.options.deadLetterRetentionSeconds,
      this.policies.fallbackSpec,
      partition.wakeChannel,
      routes,
      kinds,
      userIds.length,
      ...userArgs,
      items.length,
    ];
    for (const item of items) {
      // A head the plan did not find ("") has no record to declare.
      const taskKey = item.taskId === "" ? 0 : keys.push(partition.task(item.taskId));
      args.push(item.kind, item.taskId, item.user, taskKey);
    }
    // Claims, finishes and releases wait for the replicas too, so the next
    // step (running a task, claiming the next) follows a replicated change;
    // short of replicas they go on: the change is made and cannot be taken
    // back, and a failover that loses it only reruns a task (at-least-once).
    // A claim that fails keeps its global units until their windows reset: fewer starts, never more.
    const { reply } = (await this.change("claim", scripts.claim, keys, args, true)) as { reply: (number | Buffer)[] };
    const overCap = Number(reply[7]);
    for (let i = 0; i < overCap; i++) await this.trimDeadLetters(partition, String(reply[8 + i]));
    const result = this.claimResult(partitionNumber, reply, claimId, 8 + overCap);
    let { nextDue } = result;
    if (reservation) {
      await reservation.refund(reservation.granted - result.claimed.length);
      // Held back by the global windows: this partition's due users wait for them, not for their own.
      if (reservation.granted < wanted && nextDue !== undefined) {
        nextDue = Math.max(nextDue, result.now + reservation.waitMs);
      }
    }
    return {
      ...result,
      nextDue,
      deadLettered: Number(reply[4]),
      expired: Number(reply[5]),
      cancelled: Number(reply[6]),
    };
  }

  /**
   * A claim's result from a reply {now, next due, next retry, next lease
   * expiry, …, claims (eight entries each) from `first`}.
   */
  private claimResult(partition: number, reply: readonly unknown[], claimId: string, first = 4): ClaimResult {
    const moment = (value: unknown): number | undefined =>
      Number(String(value)) >= 0 ? Number(String(value)) : undefined;
    const claimed: ClaimedTask[] = [];
    for (let i = first; i + 7 < reply.length; i += 8) {
      const traceparent = String(reply[i + 6]);
      claimed.push({
        taskId: String(reply[i]),
        userId: String(reply[i + 1]),
        kind: String(reply[i + 2]),
        payload: reply[i + 3] as Buffer,
        attempt: Number(reply[i + 4]),
        dueAt: Number(reply[i + 5]),
        claimId,
        trace: traceparent === "" ? undefined : { traceparent, submittedAt: Number(reply[i + 7]) },
      });
    }
    return {
      partition,
      now: Number(reply[0]),
      claimed,
      nextDue: moment(reply[1]),
      nextRetry: moment(reply[2]),
      nextLeaseExpiry: moment(reply[3]),
    };
  }

  /** Records the end of one attempt and releases its lease. */
  async finish(
    task: { readonly taskId: string; readonly userId: string; readonly attempt: number },
    result: AttemptResult,
    retryDelayMs: number,
  ): Promise<FinishOutcome> {
    const partition = this.keys.forUser(task.userId);
    const { reply: replied } = await this.change(
      "finish",
      scripts.finish,
      [
        partition.task(task.taskId),
        partition.leases,
        partition.retries,
        partition.deadLetters(task.userId),
        partition.stats(task.userId),
        partition.totals,
        partition.dueUsers,
      ],
      [
        task.taskId,
        task.attempt,
        result.ok ? "ok" : "failed",
        result.ok ? "" : result.error.slice(0, 1_000),
        this.options.retentionSeconds,
        // A failure that must not be retried is the last attempt.
        !result.ok && result.retry === false ? 0 : this.options.maxAttempts,
        Math.round(retryDelayMs),
        this.options.deadLetterCap,
        partition.progressChannel,
        task.userId,
        partition.wakeChannel,
        leaseMember(task.taskId, task.userId),
        this.publish,
        this.options.deadLetterRetentionSeconds,
      ],
    );
    if (Number(replied) === FINISH.DEAD_OVER_CAP) await this.trimDeadLetters(partition, task.userId);
    return FINISH_OUTCOMES.get(Number(replied)) ?? "lease-lost";
  }

  /**
   * Drops the dead letters past the user's cap with their records: the ids
   * past it are read, then removed and their records deleted in one script
   * that declares them (includes/dead-letter says why in two steps). Best
   * effort: the dead letter that called for it is stored either way, and a
   * trim that fails leaves the list over its cap, records and all, until the
   * user's next dead letter trims it or the list expires.
   */
  private async trimDeadLetters(partition: PartitionKeys, userId: string): Promise<void> {
    const cap = this.options.deadLetterCap;
    const dead = partition.deadLetters(userId);
    try {
      for (;;) {
        const ids = await this.tracked(() => this.redis.lrange(dead, cap, cap + TRIM_BATCH - 1));
        if (ids.length === 0) return;
        const { reply } = await this.change(
          "trim-dead-letters",
          scripts.trimDeadLetters,
          [dead, partition.totals, ...ids.map((id) => partition.task(id))],
          [cap, ...ids],
        );
        // None dropped: the list changed meanwhile; its next trim sees it.
        if (Number(reply) === 0 || ids.length < TRIM_BATCH) return;
      }
    } catch {
      // See above: left for the next trim; the caller's change is made.
    }
  }

  /**
   * Hands back a task this process holds but will not run to an outcome: to
   * the head of its queue, due now, the attempt not counted; or ends it
   * cancelled when its cancel was requested. "lease-lost" when its lease was
   * no longer this attempt's.
   */
  async release(task: HeldTask): Promise<ReleaseOutcome> {
    const partition = this.keys.forUser(task.userId);
    const { reply: released } = await this.change(
      "release",
      scripts.release,
      [
        partition.task(task.taskId),
        partition.leases,
        partition.queue(task.userId),
        partition.dueUsers,
        partition.stats(task.userId),
        partition.totals,
        partition.heads,
      ],
      [
        task.taskId,
        task.attempt,
        task.userId,
        task.claimId ?? "",
        partition.progressChannel,
        partition.wakeChannel,
        leaseMember(task.taskId, task.userId),
        this.publish,
        this.options.retentionSeconds,
      ],
    );
    return Number(released) === RELEASE.RELEASED
      ? "released"
      : Number(released) === RELEASE.CANCELLED
        ? "cancelled"
        : "lease-lost";
  }

  /**
   * What the claim with this id took, if it ran and its record is still kept
   * (empty when it never ran). Sent after the claim on the same connection,
   * it is answered after the claim ran.
   */
  async claimedBy(partition: number, claimId: string): Promise<HeldTask[]> {
    const entries = await storeCall(() => this.redis.lrange(this.keys.partition(partition).claim(claimId), 0, -1));
    const tasks: HeldTask[] = [];
    for (let i = 0; i + 2 < entries.length; i += 3) {
      tasks.push({ taskId: entries[i]!, userId: entries[i + 1]!, attempt: Number(entries[i + 2]), claimId });
    }
    return tasks;
  }

  /** Extends the leases of tasks still running here; returns how many were extended. */
  async renew(tasks: readonly LeasedTask[]): Promise<number> {
    const byPartition = new Map<PartitionKeys, string[]>();
    for (const task of tasks) {
      const partition = this.keys.forUser(task.userId);
      const members = byPartition.get(partition) ?? [];
      members.push(leaseMember(task.taskId, task.userId));
      byPartition.set(partition, members);
    }
    const renewed = await Promise.all(
      [...byPartition].map(async ([partition, members]) =>
        Number(await scripts.renew.run(this.redis, [partition.leases], [this.options.leaseMs, ...members])),
      ),
    );
    return renewed.reduce((sum, count) => sum + count, 0);
  }

  async getTask(taskId: string): Promise<TaskRecord | undefined> {
    const partition = this.keys.forTask(taskId);
    if (!partition) return undefined;
    const fields = await this.tracked(() => storeCall(() => this.redis.hgetallBuffer(partition.task(taskId))));
    return taskRecordOf(taskId, fields);
  }

  /**
   * A page of one user's tasks, read with plain commands, every key in the
   * user's partition (one slot on a Cluster): the list or set that orders
   * them, then their records together. Between the two reads a task may move
   * on; it is listed as its record says then (a queued listing gives a
   * position only to a task still queued), and one whose record is gone is
   * left out.
   */
  async listTasks(userId: string, state: ListState, options: ListOptions): Promise<ListPage> {
    const partition = this.keys.forUser(userId);
    return this.tracked(() =>
      storeCall(() =>
        state === "running"
          ? this.listRunning(partition, userId, options)
          : this.listFromList(partition, userId, state, options),
      ),
    );
  }

  /**
   * The queue (head first) or the dead-letter list (newest first), after the
   * cursor's task. The queue is FIFO: a task leaves from the head (a claim)
   * and new ones join the back, so when the cursor's task is no longer in it,
   * every task before it has left too, and the listing continues from the
   * head. (A released or recovered task goes back to the head: it may be
   * listed again, as it re-entered the queue.) Dead letters join at the head
   * and leave from the tail (trimmed at the cap, oldest first) or all at once
   * (the list expires), so when the cursor's task is gone every older one is
   * gone too, and the listing is done.
   */
  private async listFromList(
    partition: PartitionKeys,
    userId: string,
    state: "queued" | "dead",
    { pageSize, after }: ListOptions,
  ): Promise<ListPage> {
    const list = state === "queued" ? partition.queue(userId) : partition.deadLetters(userId);
    let start = 0;
    if (after !== undefined) {
      const index = await this.redis.lpos(list, after);
      if (index !== null) start = index + 1;
      else if (state === "dead") return { tasks: [], next: undefined };
    }
    // One more than a page, to know whether another follows.
    const ids = await this.redis.lrange(list, start, start + pageSize);
    const more = ids.length > pageSize;
    const pageIds = ids.slice(0, pageSize);
    const records = await this.readRecords(partition, pageIds);
    const tasks: ListedTask[] = [];
    records.forEach((record, i) => {
      if (!record) return;
      const position = state === "queued" && record.state === "queued" ? start + i + 1 : 0;
      tasks.push({ ...record, position });
    });
    return { tasks, next: more ? pageIds.at(-1) : undefined };
  }

  /**
   * The user's running tasks (its members of the partition's leases, whose
   * scores are lease expiries, so the order comes from the records), earliest
   * started first, ties by id. The cursor is a task id; the next page starts
   * after its (start, id), read from its record whether it still runs or not,
   * so a task that keeps running is never skipped. Without its record (or a
   * start), the listing starts again.
   */
  private async listRunning(
    partition: PartitionKeys,
    userId: string,
    { pageSize, after }: ListOptions,
  ): Promise<ListPage> {
    const members = await this.redis.zrange(partition.leases, 0, -1);
    const ids = members.map(parseLeaseMember).flatMap((member) => (member.userId === userId ? [member.taskId] : []));
    const records = await this.readRecords(partition, after === undefined ? ids : [...ids, after]);
    const cursor = after === undefined ? undefined : records.at(-1);
    const running = records
      .slice(0, ids.length)
      .filter((record): record is TaskRecord => record !== undefined && record.state === "running")
      .map((record) => ({ record, startedAt: record.startedAt ?? 0 }))
      .sort((a, b) => a.startedAt - b.startedAt || (a.record.taskId < b.record.taskId ? -1 : 1));
    const from =
      cursor === undefined || cursor.startedAt === undefined
        ? 0
        : running.findIndex(
            ({ record, startedAt }) =>
              startedAt > cursor.startedAt! || (startedAt === cursor.startedAt && record.taskId > cursor.taskId),
          );
    const rest = from < 0 ? [] : running.slice(from);
    const tasks = rest.slice(0, pageSize).map(({ record }) => ({ ...record, position: 0 }));
    return { tasks, next: rest.length > pageSize ? tasks.at(-1)?.taskId : undefined };
  }

  /** The records of `taskIds` (all in `partition`), read together; undefined for one that is gone. */
  private async readRecords(partition: PartitionKeys, taskIds: readonly string[]): Promise<(TaskRecord | undefined)[]> {
    const fields = await Promise.all(taskIds.map((taskId) => this.redis.hgetallBuffer(partition.task(taskId))));
    return taskIds.map((taskId, i) => taskRecordOf(taskId, fields[i]));
  }

  /**
   * Cancels one of the user's tasks if it is queued or waiting to retry
   * (cancel-n.lua); any other is left as it is, and the outcome says why.
   */
  async cancelTask(task: { readonly taskId: string; readonly userId: string }): Promise<CancelOutcome> {
    const partition = this.keys.forTask(task.taskId);
    // An id of no partition here, or of another partition than its user's, names no task of the user.
    if (partition !== this.keys.forUser(task.userId)) return "not-found";
    const [code] = await this.cancelBatch(partition, task.userId, [task.taskId]);
    return CANCEL_OUTCOMES.get(Number(code)) ?? "not-found";
  }

  /**
   * Cancels every queued task of the user, then every one waiting to retry,
   * then every delayed one, in batches: the ids are read first (the queue a
   * batch at a time, the partition's retries and delayed sets whole,
   * filtered to the user), then cancelled by a
   * script that declares their records (the two steps of trimDeadLetters).
   * A task that moved on between the two steps (claimed, say) is left as it
   * is. Returns how many were cancelled.
   */
  async purgeQueue(userId: string): Promise<number> {
    const partition = this.keys.forUser(userId);
    const queue = partition.queue(userId);
    let cancelled = 0;
    for (;;) {
      const ids = await this.tracked(() => storeCall(() => this.redis.lrange(queue, 0, PURGE_BATCH - 1)));
      if (ids.length === 0) break;
      const codes = await this.cancelBatch(partition, userId, ids);
      const now = codes.filter((code) => Number(code) === CANCEL.CANCELLED).length;
      cancelled += now;
      // None cancelled: the ids moved on meanwhile (claimed); stop rather than spin.
      if (now === 0) break;
    }
    for (const set of [partition.retries, partition.delayed]) {
      const members = await this.tracked(() => storeCall(() => this.redis.zrange(set, 0, -1)));
      const waiting = members
        .map(parseLeaseMember)
        .flatMap((member) => (member.userId === userId ? [member.taskId] : []));
      for (let i = 0; i < waiting.length; i += PURGE_BATCH) {
        const codes = await this.cancelBatch(partition, userId, waiting.slice(i, i + PURGE_BATCH));
        cancelled += codes.filter((code) => Number(code) === CANCEL.CANCELLED).length;
      }
    }
    return cancelled;
  }

  /** Runs cancel-n.lua on some of one user's tasks, all in `partition`; one reply code per task. */
  private async cancelBatch(partition: PartitionKeys, userId: string, taskIds: readonly string[]): Promise<unknown[]> {
    const { reply } = await this.change(
      "cancel",
      scripts.cancel,
      [
        partition.queue(userId),
        partition.dueUsers,
        partition.heads,
        partition.retries,
        partition.stats(userId),
        partition.totals,
        partition.delayed,
        partition.parked,
        partition.parkedUsers,
        ...taskIds.map((taskId) => partition.task(taskId)),
      ],
      [
        userId,
        partition.progressChannel,
        this.publish,
        this.options.retentionSeconds,
        partition.cancelChannel,
        partition.wakeChannel,
        ...taskIds,
      ],
    );
    return reply as unknown[];
  }

  /**
   * Requeues dead letters (requeue-dead-letters-n.lua), each batch of ids in
   * one script with their records declared; for "all", the ids are read
   * first, oldest first (see eachDeadLetterBatch).
   */
  async requeueDeadLetters(userId: string, tasks: DeadLetterSelection): Promise<DeadLetterResult> {
    const partition = this.keys.forUser(userId);
    // Only when the head is scheduled: a policy changed meanwhile makes the claim reschedule it.
    const { windows } = (await this.policies.effectivePolicy(userId)).policy;
    const windowKeys = this.windows.keysFor(userId, windows);
    const limits = windows.map((window) => window.limit);
    return this.eachDeadLetterBatch(partition, userId, tasks, async (ids) => {
      const { reply } = await this.change(
        "requeue-dead-letters",
        scripts.requeueDeadLetters,
        [
          partition.deadLetters(userId),
          partition.queue(userId),
          partition.dueUsers,
          partition.heads,
          partition.totals,
          partition.stats(userId),
          ...windowKeys,
          ...ids.map((id) => partition.task(id)),
        ],
        [
          userId,
          partition.wakeChannel,
          partition.progressChannel,
          this.publish,
          this.options.retentionSeconds,
          limits.length,
          ...limits,
          ...ids,
        ],
      );
      return reply as (number | string)[];
    });
  }

  /** Purges dead letters (purge-dead-letters-n.lua), in batches as requeueDeadLetters. */
  async purgeDeadLetters(userId: string, tasks: DeadLetterSelection): Promise<DeadLetterResult> {
    const partition = this.keys.forUser(userId);
    return this.eachDeadLetterBatch(partition, userId, tasks, async (ids) => {
      const { reply } = await this.change(
        "purge-dead-letters",
        scripts.purgeDeadLetters,
        [partition.deadLetters(userId), ...ids.map((id) => partition.task(id))],
        ids,
      );
      return reply as (number | string)[];
    });
  }

  /**
   * Pauses the user's queue (pause-4.lua): the user joins the partition's
   * paused set and leaves its due users; admit and claim start nothing of it.
   */
  async pauseQueue(userId: string): Promise<{ readonly queued: number }> {
    const partition = this.keys.forUser(userId);
    const { reply } = await this.change(
      "pause",
      scripts.pause,
      [partition.paused, partition.dueUsers, partition.queue(userId), partition.stats(userId)],
      [userId, partition.progressChannel, this.publish],
    );
    return { queued: Number((reply as number[])[0]) };
  }

  /**
   * Resumes the user's queue (resume-n.lua): it leaves the paused set and,
   * with a task queued, is due again when its windows have room, as a new
   * head is (requeueDeadLetters schedules one the same way).
   */
  async resumeQueue(userId: string): Promise<{ readonly queued: number }> {
    const partition = this.keys.forUser(userId);
    // Only when the head is scheduled: a policy changed meanwhile makes the claim reschedule it.
    const { windows } = (await this.policies.effectivePolicy(userId)).policy;
    const limits = windows.map((window) => window.limit);
    const { reply } = await this.change(
      "resume",
      scripts.resume,
      [
        partition.paused,
        partition.dueUsers,
        partition.heads,
        partition.queue(userId),
        partition.stats(userId),
        ...this.windows.keysFor(userId, windows),
      ],
      [userId, partition.wakeChannel, partition.progressChannel, this.publish, limits.length, ...limits],
    );
    return { queued: Number((reply as number[])[0]) };
  }

  /**
   * Runs `batch` (a script replying {done, not found id, ...}) over the ids
   * in batches of DEAD_LETTER_BATCH, summing its replies. An id of another
   * partition than the user's cannot be on the user's list: it is not found,
   * and no key of it is built. For "all", the two-step pattern of
   * trimDeadLetters: the ids are read from the list's tail (oldest first),
   * a batch at a time, then handed to the script with their keys declared;
   * at most as many as the list held when the call began, so tasks that die
   * again meanwhile (they join at the head) are not taken in a loop.
   */
  private async eachDeadLetterBatch(
    partition: PartitionKeys,
    userId: string,
    tasks: DeadLetterSelection,
    batch: (ids: readonly string[]) => Promise<(number | string)[]>,
  ): Promise<DeadLetterResult> {
    let done = 0;
    const notFound: string[] = [];
    const run = async (ids: readonly string[]): Promise<void> => {
      const [count, ...missing] = await batch(ids);
      done += Number(count);
      notFound.push(...missing.map(String));
    };
    if (tasks !== "all") {
      const ours = tasks.filter((id) => this.keys.forTask(id) === partition);
      notFound.push(...tasks.filter((id) => this.keys.forTask(id) !== partition));
      for (let i = 0; i < ours.length; i += DEAD_LETTER_BATCH) await run(ours.slice(i, i + DEAD_LETTER_BATCH));
      const order = new Map(tasks.map((id, i) => [id, i]));
      notFound.sort((a, b) => order.get(a)! - order.get(b)!);
      return { done, notFound };
    }
    const dead = partition.deadLetters(userId);
    let left = await this.tracked(() => storeCall(() => this.redis.llen(dead)));
    while (left > 0) {
      const ids = await this.tracked(() =>
        storeCall(() => this.redis.lrange(dead, -Math.min(left, DEAD_LETTER_BATCH), -1)),
      );
      if (ids.length === 0) break;
      // Oldest first: the list is newest first.
      await run(ids.reverse());
      left -= ids.length;
    }
    return { done, notFound };
  }

  /**
   * Every user with something (ListQueues), read with plain commands. Users
   * with only dead letters are in no index: their lists are found by SCAN
   * (MATCH on the dead-letter key pattern) over every master, O(keys in
   * Redis). Then per partition, pipelined (one slot, so one round trip each
   * on a Cluster too): its heads (users with a queued task), leases
   * (running), retries (waiting to retry) and paused set, then each user's
   * queue and dead-letter lengths. Running and waiting to retry are counted
   * from the leases and retries members. The partitions are read at once,
   * each as it is then, so the listing is no snapshot across partitions.
   */
  async listQueues(): Promise<QueueSummary[]> {
    return this.tracked(() =>
      storeCall(async () => {
        const deadUsers = await this.scanDeadLetterUsers();
        const partitions = await Promise.all(
          this.keys.all.map((partition) => this.partitionQueues(partition, deadUsers.get(partition.partition) ?? [])),
        );
        return partitions.flat();
      }),
    );
  }

  /** The users of each partition with a dead-letter list, by SCAN over every master. */
  private async scanDeadLetterUsers(): Promise<Map<number, string[]>> {
    const users = new Map<number, string[]>();
    for (const master of mastersOf(this.redis)) {
      let cursor = "0";
      do {
        const [next, found] = await master.scan(cursor, "MATCH", this.keys.deadLettersPattern, "COUNT", SCAN_COUNT);
        cursor = next;
        for (const key of found) {
          const owner = this.keys.deadLettersOf(key);
          if (!owner) continue;
          const list = users.get(owner.partition) ?? [];
          list.push(owner.userId);
          users.set(owner.partition, list);
        }
      } while (cursor !== "0");
    }
    return users;
  }

  /** The users of one partition with something, and their counts (two pipelines in its slot). */
  private async partitionQueues(partition: PartitionKeys, deadUsers: readonly string[]): Promise<QueueSummary[]> {
    const indexes = await execPipeline(
      this.redis
        .pipeline()
        .hkeys(partition.heads)
        .zrange(partition.leases, 0, -1)
        .zrange(partition.retries, 0, -1)
        .smembers(partition.paused),
    );
    const [heads, leases, retries, paused] = indexes as [string[], string[], string[], string[]];
    const running = countUsers(leases);
    const retrying = countUsers(retries);
    const pausedUsers = new Set(paused);
    const users = [...new Set([...heads, ...running.keys(), ...retrying.keys(), ...paused, ...deadUsers])];
    if (users.length === 0) return [];
    const counts = this.redis.pipeline();
    for (const userId of users) counts.llen(partition.queue(userId)).llen(partition.deadLetters(userId));
    const lengths = (await execPipeline(counts)) as number[];
    const queues: QueueSummary[] = [];
    users.forEach((userId, i) => {
      const queue: QueueSummary = {
        userId,
        queued: lengths[2 * i] ?? 0,
        running: running.get(userId) ?? 0,
        waitingToRetry: retrying.get(userId) ?? 0,
        dead: lengths[2 * i + 1] ?? 0,
        paused: pausedUsers.has(userId),
      };
      // A dead-letter list may have expired since the scan.
      if (queue.queued + queue.running + queue.waitingToRetry + queue.dead > 0 || queue.paused) queues.push(queue);
    });
    return queues;
  }

  /** One user's counts and windows, read together. */
  async snapshot(userId: string): Promise<QueueSnapshot> {
    const partition = this.keys.forUser(userId);
    let reply: number[] = [];
    let policy = this.known.of(userId);
    // As admit: the counters of the policy last seen, and again when it changed.
    for (let attempt = 1; attempt <= 3; attempt++) {
      const { windows } = policy;
      reply = (await this.tracked(() =>
        scripts.snapshot.run(
          this.redis,
          [
            partition.queue(userId),
            partition.stats(userId),
            partition.dueUsers,
            partition.paused,
            partition.policies,
            partition.plans,
            ...this.windows.keysFor(userId, windows),
          ],
          [userId, this.policies.fallbackSpec, ...windowSeconds(windows)],
        ),
      )) as number[];
      policy = this.learnPolicy(userId, reply[14]);
      if (Number(reply[15]) === 1) break;
    }
    const [
      now = 0,
      queued = 0,
      running = 0,
      waiting = 0,
      succeeded = 0,
      failed = 0,
      dead = 0,
      due = -1,
      generation = -1,
      paused = 0,
      cancelled = 0,
      requeued = 0,
      delayed = 0,
      expired = 0,
    ] = reply;
    return {
      now,
      queued: queued + waiting + Math.max(0, delayed),
      expired,
      running: Math.max(0, running),
      succeeded,
      failed,
      dead,
      cancelled,
      requeued,
      generation,
      dueAt: due >= 0 ? due : undefined,
      paused: paused === 1,
      windows: countersFromReply(reply.slice(16), now),
      policy,
    };
  }

  /** Every queue's counts together: the sum over the partitions (windows are per user, so none). */
  async snapshotAll(): Promise<QueueSnapshot> {
    const replies = (await Promise.all(
      this.keys.all.map((partition) =>
        scripts.snapshotAll.run(this.redis, [partition.totals, partition.leases, partition.dueUsers], []),
      ),
    )) as number[][];
    const sum = {
      now: 0,
      queued: 0,
      running: 0,
      succeeded: 0,
      failed: 0,
      dead: 0,
      cancelled: 0,
      requeued: 0,
      expired: 0,
      due: Infinity,
    };
    for (const [
      now = 0,
      queued = 0,
      running = 0,
      succeeded = 0,
      failed = 0,
      dead = 0,
      due = -1,
      cancelled = 0,
      requeued = 0,
      expired = 0,
    ] of replies) {
      // On a Cluster each partition's master has its own clock; the latest is the truest "now".
      sum.now = Math.max(sum.now, now);
      sum.queued += queued;
      sum.running += running;
      sum.succeeded += succeeded;
      sum.failed += failed;
      sum.dead += dead;
      sum.cancelled += cancelled;
      sum.requeued += requeued;
      sum.expired += expired;
      if (due >= 0) sum.due = Math.min(sum.due, due);
    }
    const { due, ...counts } = sum;
    // The totals hashes are permanent: one generation for good.
    return { ...counts, generation: 0, dueAt: Number.isFinite(due) ? due : undefined, windows: undefined };
  }

  /** Dead letters dropped at their list's cap (with their records), over every partition. */
  async droppedDeadLetters(): Promise<number> {
    return storeCall(() =>
      sumOver(this.keys, async (partition) => Number((await this.redis.hget(partition.totals, "dx")) ?? 0)),
    );
  }

  /** How many users have a queued task scheduled, over every partition. */
  async dueUserCount(): Promise<number> {
    return storeCall(() => sumOver(this.keys, (partition) => this.redis.zcard(partition.dueUsers)));
  }

  /** A user's dead-lettered task ids, newest first. */
  async deadLetterIds(userId: string): Promise<string[]> {
    return storeCall(() => this.redis.lrange(this.keys.forUser(userId).deadLetters(userId), 0, -1));
  }

  /** The ids in a user's queue, head first (for inspection and tests). */
  async queuedTaskIds(userId: string): Promise<string[]> {
    return storeCall(() => this.redis.lrange(this.keys.forUser(userId).queue(userId), 0, -1));
  }

  /**
   * Wake-ups published by admit, finish and release on any process, in any
   * partition (one channel each); and, with undefined, every reconnect of the
   * subscriber connection, since wake-ups published meanwhile were missed.
   */
  async onWake(listener: WakeListener): Promise<Unsubscribe> {
    const stopReconnects = this.subscriptions.onReconnect(() => listener(undefined));
    return this.listenEverywhere(
      (partition) => partition.wakeChannel,
      (partition, message) => {
        // "<moment>", or "<moment> <kind>" for a user parked under that kind.
        const space = message.indexOf(" ");
        const dueAt = Number(space < 0 ? message : message.slice(0, space));
        if (!Number.isFinite(dueAt)) return listener(undefined);
        listener(
          space < 0
            ? { partition: partition.partition, dueAt }
            : { partition: partition.partition, dueAt, kind: message.slice(space + 1) },
        );
      },
      stopReconnects,
    );
  }

  /** Progress events (the user id whose queue changed), from any process, in any partition. */
  onProgress(listener: ProgressListener): Promise<Unsubscribe> {
    return this.listenEverywhere(
      (partition) => partition.progressChannel,
      (_partition, userId) => listener(userId),
    );
  }

  /** Running tasks CancelTask marked (their ids), from any process, in any partition. */
  onCancel(listener: CancelListener): Promise<Unsubscribe> {
    return this.listenEverywhere(
      (partition) => partition.cancelChannel,
      (_partition, taskId) => listener(taskId),
    );
  }

  /** Listens on one channel per partition; all or nothing (a failure leaves none subscribed). */
  private async listenEverywhere(
    channelOf: (partition: PartitionKeys) => string,
    listener: (partition: PartitionKeys, message: string) => void,
    onStop: () => void = () => {},
  ): Promise<Unsubscribe> {
    const subscribed = await Promise.allSettled(
      this.keys.all.map((partition) =>
        this.subscriptions.listen(channelOf(partition), (message) => listener(partition, message)),
      ),
    );
    const stops = subscribed.flatMap((result) => (result.status === "fulfilled" ? [result.value] : []));
    const stopAll: Unsubscribe = async () => {
      onStop();
      await Promise.all(stops.map((stop) => stop()));
    };
    const failed = subscribed.find((result) => result.status === "rejected");
    if (failed) {
      await stopAll();
      throw failed.reason;
    }
    return stopAll;
  }

  /** Available from the client's "ready" until "close" or "end", and on a Cluster while the slot answers (see Availability). */
  onAvailability(listener: AvailabilityListener): () => void {
    return this.availability.listen(listener);
  }

  /**
   * Drops the subscriber connection; the main connection is the caller's,
   * who made it. Idempotent.
   */
  close(): void {
    this.subscriptions.close();
    this.availability.close();
  }
}
