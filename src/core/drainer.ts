import type { Clock } from "./clock.js";
import type { Logger } from "../logger.js";
import type { ClaimResult, HeldTask, TaskStore, Unsubscribe } from "./store.js";
import { newTaskId } from "./task-id.js";
import type { TaskRunner } from "./task-runner.js";

export interface DrainerOptions {
  /**
   * Longest sleep with nothing scheduled. Leases of a process that died are
   * found by whichever process wakes next, so this bounds how late such a
   * task is picked up when nothing else wakes anyone.
   */
  readonly maxSleepMs: number;
}

/**
 * Claims whose reply never came (a client-side timeout, a dropped connection)
 * remembered at most: each is looked up on the next step, so only a long
 * outage piles them up, and their records in Redis expire anyway.
 */
const MAX_UNANSWERED_CLAIMS = 20;

/** Reports what one claim step did, for lateness metrics and tests. */
export type ClaimObserver = (result: ClaimResult) => void;

type State = { readonly kind: "idle" } | { readonly kind: "running" } | { readonly kind: "closed" };

/**
 * Starts queued tasks the moment their user's windows allow. It sleeps until
 * the earliest moment something is due (a user's head task, a retry, a lease
 * running out), or until woken: by the store's wake-up when a user becomes
 * due anywhere, or by a slot freeing up here. No loop per user, and
 * nothing polls: with nothing due it sends one claim per maxSleepMs.
 */
export class Drainer {
  private state: State = { kind: "idle" };
  private again = false;
  private cancelTimer: (() => void) | undefined;
  private wakeAt = Infinity;
  /**
   * Earliest moment a wake asked for while a claim was in flight. That
   * claim's reply may predate the wake's cause, so plan() must not drop it.
   */
  private wokenAt = Infinity;
  /** The claim step in flight, which close() waits for. */
  private stepping: Promise<void> | undefined;
  /** Ids of claims that may have run in Redis though their reply never came. */
  private readonly unanswered: string[] = [];
  private readonly claimIdPrefix = newTaskId();
  private claimCount = 0;
  /** Redis clock minus local clock, ms, from the latest claim. */
  private offsetMs = 0;
  /** Due users were left waiting for a free slot. */
  private waitingForSlot = false;
  private failures = 0;
  private unsubscribe: Unsubscribe | undefined;

  constructor(
    private readonly store: TaskStore,
    private readonly runner: TaskRunner,
    private readonly logger: Logger,
    private readonly clock: Clock,
    private readonly options: DrainerOptions,
    private readonly observe: ClaimObserver = () => {},
  ) {}

  /** Subscribes to wake-ups and takes its first step; rejects when the store cannot be reached. */
  async start(): Promise<void> {
    const unsubscribe = await this.store.onWake(this.onWake);
    if (this.state.kind === "closed") {
      await unsubscribe();
      return;
    }
    this.unsubscribe = unsubscribe;
    this.runner.on("slot-free", this.onSlotFree);
    void this.cycle();
  }

  private readonly onWake = (dueAt: number | undefined): void => {
    // Wakes may have been missed (a reconnect): look again now.
    if (dueAt === undefined) {
      void this.cycle();
      return;
    }
    const at = dueAt - this.offsetMs;
    if (this.state.kind === "running") this.wokenAt = Math.min(this.wokenAt, at);
    this.schedule(at);
  };

  private readonly onSlotFree = (): void => {
    if (this.waitingForSlot) void this.cycle();
  };

  /** Runs a claim step at local time `at`, unless one is planned sooner. */
  private schedule(at: number): void {
    if (this.state.kind === "closed" || at >= this.wakeAt) return;
    this.cancelTimer?.();
    this.wakeAt = at;
    this.cancelTimer = this.clock.setTimer(() => {
      this.wakeAt = Infinity;
      this.cancelTimer = undefined;
      void this.cycle();
    }, at - this.clock.now());
  }

  private cycle(): Promise<void> {
    if (this.state.kind === "closed") return Promise.resolve();
    if (this.state.kind === "running") {
      this.again = true;
      return Promise.resolve();
    }
    this.state = { kind: "running" };
    const step = this.step().finally(() => {
      if (this.stepping === step) this.stepping = undefined;
    });
    this.stepping = step;
    return step;
  }

  private async step(): Promise<void> {
    try {
      do {
        this.again = false;
        await this.settleUnanswered();
        const claimId = `${this.claimIdPrefix}.${++this.claimCount}`;
        // Wakes from here on may be newer than what this claim reads.
        this.wokenAt = Infinity;
        const before = this.clock.now();
        let result: ClaimResult;
        try {
          result = await this.store.claim(this.runner.freeSlots, claimId);
        } catch (error) {
          // It may still have run in Redis (a timeout while Redis was busy):
          // look up what it took on the next step instead of leaving that
          // to wait out its leases.
          this.unanswered.push(claimId);
          if (this.unanswered.length > MAX_UNANSWERED_CLAIMS) this.unanswered.shift();
          throw error;
        }
        const after = this.clock.now();
        this.offsetMs = result.now - (before + after) / 2;
        this.failures = 0;
        if ((this.state as State).kind === "closed") {
          // Closed while the claim was in flight: hand back what it took.
          await this.handBack(result.claimed);
          return;
        }
        for (const task of result.claimed) this.runner.start(task);
        this.observe(result);
        this.plan(result);
      } while (this.again && (this.state as State).kind !== "closed");
    } catch (error) {
      this.failures++;
      if (this.failures === 1) this.logger.warn({ error: (error as Error).message }, "drainer cannot claim; retrying");
      this.schedule(this.clock.now() + Math.min(5_000, 250 * 2 ** Math.min(this.failures, 5)));
    } finally {
      // close() may have run meanwhile; it must stay closed.
      if (this.state.kind === "running") this.state = { kind: "idle" };
    }
  }

  /** Decides when to look again after a claim step. */
  private plan(result: ClaimResult): void {
    const local = (redisMs: number): number => redisMs - this.offsetMs;
    let next = this.clock.now() + this.options.maxSleepMs;
    for (const moment of [result.nextRetry, result.nextLeaseExpiry]) {
      if (moment !== undefined) next = Math.min(next, local(moment));
    }
    this.waitingForSlot = false;
    this.runner.dueTasksWaiting = result.nextDue !== undefined && result.nextDue <= result.now;
    if (result.nextDue !== undefined) {
      if (result.nextDue > result.now) {
        next = Math.min(next, local(result.nextDue));
      } else if (this.runner.freeSlots > 0 && result.claimed.length > 0) {
        this.again = true; // more users are due than this step took
      } else if (this.runner.freeSlots > 0) {
        next = Math.min(next, this.clock.now() + 10); // due but nothing claimable: do not spin
      } else {
        this.waitingForSlot = true;
      }
    }
    // A wake that came during the claim may be about something its reply
    // could not see yet.
    next = Math.min(next, this.wokenAt);
    this.wokenAt = Infinity;
    this.wakeAt = Infinity; // forget the old plan; schedule() replaces its timer
    this.schedule(next);
  }

  /** Hands back what claims without a reply took, if they ran; throws when Redis does not answer. */
  private async settleUnanswered(): Promise<void> {
    while (this.unanswered.length > 0) {
      const claimId = this.unanswered[0]!;
      const tasks = await this.store.claimedBy(claimId);
      this.unanswered.shift();
      if (tasks.length > 0) {
        this.logger.warn({ tasks: tasks.length }, "a claim whose reply was lost had taken tasks; handing them back");
        await this.handBack(tasks);
      }
    }
  }

  /** Puts claimed tasks that will not run here back at the head of their queues. */
  private async handBack(tasks: readonly HeldTask[]): Promise<void> {
    await Promise.all(
      tasks.map((task) =>
        this.store.release(task).catch((error: unknown) => {
          this.logger.warn(
            { error: (error as Error).message, taskId: task.taskId },
            "could not hand a claimed task back; it runs when its lease runs out",
          );
        }),
      ),
    );
  }

  /**
   * Stops claiming. A claim in flight is waited for and what it took is
   * handed back, as is what claims without a reply took; running tasks are
   * the runner's to finish. Idempotent.
   */
  async close(): Promise<void> {
    if (this.state.kind === "closed") return;
    this.state = { kind: "closed" };
    this.cancelTimer?.();
    this.runner.off("slot-free", this.onSlotFree);
    const unsubscribed = this.unsubscribe?.().catch(() => {});
    await this.stepping;
    await this.settleUnanswered().catch((error: unknown) => {
      this.logger.warn(
        { error: (error as Error).message },
        "could not look up claims whose reply was lost; their tasks run when their leases run out",
      );
    });
    await unsubscribed;
  }
}
