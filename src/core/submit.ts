import { metrics } from "../metrics.js";
import { actingUserId, authorizeSubmit, type Identity } from "./authorization.js";
import { formatRatePolicy, type RatePolicy } from "./rate-policy.js";
import { invalidArgument, queuePaused, resourceExhausted } from "./service-error.js";
import { nthStartTime, type WindowCounter } from "./start-schedule.js";
import { NotReplicated, type Admission, type TaskStore } from "./store.js";
import type { TaskRunner } from "./task-runner.js";
import type { TaskTraceContext } from "./task-tracer.js";
import { systemClock, type Clock } from "./clock.js";
import type { UserPolicy } from "./user-policy.js";
import {
  checkCost,
  checkIdempotencyKey,
  checkKindName,
  checkKnownKind,
  checkPayload,
  checkPriority,
  checkSchedule,
  checkUserId,
} from "./validation.js";

/** One Submit, as the transport decoded it. */
export interface SubmitCommand {
  /** Empty: the user of the caller's key. */
  readonly userId: string;
  readonly payload: Uint8Array;
  /** Empty: the default handler. */
  readonly kind: string;
  /** Empty: none. */
  readonly idempotencyKey: string;
  /** What to do when the user is over the limit; `{ unknown }` is a value the transport could not name, refused. */
  readonly overLimit: "queue" | "reject" | { readonly unknown: number };
  /** Starts no earlier than this moment (ms); undefined: now. */
  readonly notBefore?: number | undefined;
  /** Not started by this moment (ms), it ends expired; undefined: no deadline. */
  readonly startBy?: number | undefined;
  /** Place in the user's queue, 0 to MAX_PRIORITY (higher first); undefined: 0. */
  readonly priority?: number | undefined;
  /** W3C traceparent of the Submit span (the transport made it); undefined: not traced. */
  readonly traceparent?: string | undefined;
  /** Units of every window the task uses at each attempt's start; 0 (unset): 1. */
  readonly cost?: number;
}

/** One window of the user's policy as it stands after the Submit. */
export interface WindowState {
  readonly limit: number;
  readonly durationMs: number;
  readonly remaining: number;
  /** When the open window closes; undefined when none is open. */
  readonly resetAt: number | undefined;
}

/** What became of an accepted Submit; refusals are thrown as ServiceError. */
export type SubmitDecision =
  | {
      readonly outcome: "started";
      readonly taskId: string;
      readonly estimatedStart: number;
      readonly windows: readonly WindowState[];
    }
  | {
      readonly outcome: "queued";
      readonly taskId: string;
      readonly position: number;
      /**
       * The earliest moment the policy lets it start, if everything ahead
       * starts on time (taken as one unit each); never before its not_before.
       */
      readonly estimatedStart: number;
      readonly windows: readonly WindowState[];
    }
  /** A repeated idempotency key: the first task's id. */
  | { readonly outcome: "duplicate"; readonly taskId: string };

/** What Submit needs from this process's runner: a slot held across the admit, and the start. */
export type SlotRunner = Pick<TaskRunner, "reserve" | "release" | "start">;

export interface SubmitRules {
  readonly store: Pick<TaskStore, "admit">;
  readonly runner: SlotRunner;
  /** The host's policy (TOLLGATE_RATE_LIMITS), for a store that names no user's own. */
  readonly policy: RatePolicy;
  /** Handler kinds this server runs itself (besides the empty kind): only these may start at Submit. */
  readonly kinds: ReadonlySet<string>;
  /**
   * With TOLLGATE_REQUIRE_KNOWN_KINDS: the kinds run anywhere (handlers here
   * and workers connected to any host); Submit refuses others. Absent: any
   * kind is accepted and waits for a worker that runs it.
   */
  readonly knownKinds?: () => Promise<ReadonlySet<string>>;
  readonly maxPayloadBytes: number;
  /** Judges not_before and start_by; the system clock by default. */
  readonly clock?: Clock;
}

/**
 * Submit's decision: validates the command, authorizes the caller, and
 * applies the rate policy (start now, queue, or RESOURCE_EXHAUSTED), storing
 * the task in the same atomic step as the decision, since a decision taken
 * apart from its write could be overtaken by another Submit for the same user.
 * A task stored as started is started here, on this process's runner, before
 * the answer: it must run even if the caller goes away. Throws ServiceError
 * for a refusal, or the store's error.
 */
export async function decideSubmit(
  rules: SubmitRules,
  caller: Identity,
  command: SubmitCommand,
): Promise<SubmitDecision> {
  const timer = metrics.submitSeconds.startTimer();
  try {
    return await decide(rules, caller, command);
  } finally {
    timer();
  }
}

async function decide(rules: SubmitRules, caller: Identity, command: SubmitCommand): Promise<SubmitDecision> {
  const { store, runner } = rules;
  const userId = actingUserId(caller, command.userId);
  checkUserId(userId);
  authorizeSubmit(caller, userId);
  checkPayload(command.payload, rules.maxPayloadBytes);
  checkKindName(command.kind);
  if (rules.knownKinds && command.kind !== "" && !rules.kinds.has(command.kind)) {
    checkKnownKind(command.kind, await rules.knownKinds());
  }
  checkIdempotencyKey(command.idempotencyKey);
  const notBefore = checkSchedule(command.notBefore, command.startBy, (rules.clock ?? systemClock).now());
  const priority = checkPriority(command.priority ?? 0);
  const cost = checkCost(command.cost ?? 0);
  const { overLimit } = command;
  if (typeof overLimit !== "string") {
    throw invalidArgument("over_limit", `unknown value ${overLimit.unknown}; use QUEUE or REJECT`);
  }
  // A slot is held across the admit so that a task told STARTED can run at
  // once; without a free slot the task queues and any process's drainer
  // starts it when a slot frees. The slot is held until admit knows the
  // outcome, which after a lost reply takes a read of the task's record: a
  // task that turns out started by this admit comes back as "started" and
  // runs here; one whose outcome stays unknown (AdmitReplyLost) gives the
  // slot back, and its lease, if it was stored, hands it to a drainer.
  // A kind run elsewhere (remote workers) queues, for its claimers.
  const reserved = (command.kind === "" || rules.kinds.has(command.kind)) && runner.reserve();
  let admission: Admission;
  try {
    admission = await store.admit({
      userId,
      payload: command.payload,
      kind: command.kind,
      idempotencyKey: command.idempotencyKey,
      rejectOverLimit: overLimit === "reject",
      canStartNow: reserved,
      ...(notBefore === undefined ? {} : { notBefore }),
      ...(command.startBy === undefined ? {} : { startBy: command.startBy }),
      ...(priority === 0 ? {} : { priority }),
      ...(command.traceparent === undefined ? {} : { traceparent: command.traceparent }),
      ...(cost === 1 ? {} : { cost }),
    });
  } catch (error) {
    // Stored but not confirmed by enough replicas: the caller hears
    // UNAVAILABLE, yet a task admit started holds this slot and this
    // process's lease, so it runs now rather than after its lease runs out.
    if (error instanceof NotReplicated && error.admission.outcome === "started" && reserved) {
      const { taskId } = error.admission;
      runner.start(
        { taskId, userId, kind: command.kind, payload: command.payload, attempt: 1, ...traceOf(command) },
        true,
      );
    } else if (reserved) {
      runner.release();
    }
    throw error;
  }
  if (admission.outcome === "started") {
    // The store starts a task only into the slot reserved for it.
    runner.start(
      {
        taskId: admission.taskId,
        userId,
        kind: command.kind,
        payload: command.payload,
        attempt: 1,
        ...traceOf(command),
      },
      true,
    );
  } else if (reserved) {
    runner.release();
  }
  metrics.submitted.inc({ disposition: admission.outcome });
  switch (admission.outcome) {
    case "cost-too-high": {
      const window = admission.policy.windows[admission.window];
      throw invalidArgument(
        "cost",
        `${cost} is above the limit of the user's window ${window ? formatRatePolicy([window]) : `#${admission.window + 1}`}, so the task could never start; nothing was stored`,
      );
    }
    case "started":
      return {
        outcome: "started",
        taskId: admission.taskId,
        estimatedStart: admission.now,
        windows: windowStates(windowsOf(rules, admission), admission.windows),
      };
    case "queued":
      return {
        outcome: "queued",
        taskId: admission.taskId,
        position: admission.position,
        estimatedStart: Math.max(
          notBefore ?? -Infinity,
          nthStartTime(windowsOf(rules, admission), admission.windows, admission.now, admission.position, cost),
        ),
        windows: windowStates(windowsOf(rules, admission), admission.windows),
      };
    case "duplicate":
      return { outcome: "duplicate", taskId: admission.taskId };
    case "over-limit": {
      // A new task could start once everything queued ahead of it has.
      const retryAt = nthStartTime(windowsOf(rules, admission), admission.windows, admission.now, admission.queued + 1);
      throw resourceExhausted(
        `user is over the rate limit${admission.queued > 0 ? ` with ${admission.queued} tasks queued` : ""} and over_limit is REJECT; nothing was stored`,
        Math.max(1, retryAt - admission.now),
      );
    }
    case "paused":
      throw queuePaused(
        `user's queue is paused (PauseQueue) and over_limit is REJECT; nothing was stored (QUEUE would queue it until ResumeQueue)`,
      );
    case "backlog-full": {
      // A place frees up when the head of the queue starts.
      const retryAt = nthStartTime(windowsOf(rules, admission), admission.windows, admission.now, 1);
      throw resourceExhausted(
        `user's backlog is full (${admission.queued} tasks queued); nothing was stored`,
        Math.max(1, retryAt - admission.now),
      );
    }
  }
}

/** The user's windows, as the store resolved them. */
function windowsOf(rules: SubmitRules, admission: { readonly policy?: UserPolicy }): RatePolicy {
  return admission.policy?.windows ?? rules.policy;
}

/** The policy's windows as the user's counters leave them. */
function windowStates(policy: RatePolicy, counters: readonly WindowCounter[]): WindowState[] {
  return policy.map((window, i) => {
    const counter = counters[i] ?? { count: 0, resetAt: null };
    return {
      limit: window.limit,
      durationMs: window.durationMs,
      remaining: Math.max(0, window.limit - counter.count),
      resetAt: counter.resetAt ?? undefined,
    };
  });
}

/** The trace a task started at its Submit carries into its attempt, if it has one. */
function traceOf(command: SubmitCommand): { readonly trace?: TaskTraceContext } {
  return command.traceparent === undefined ? {} : { trace: { traceparent: command.traceparent } };
}
