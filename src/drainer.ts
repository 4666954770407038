import type { Redis } from "ioredis";
import type { Clock } from "./clock.js";
import type { Logger } from "./logger.js";
import type { ClaimResult, TaskQueue } from "./task-queue.js";
import type { TaskRunner } from "./task-runner.js";

export interface DrainerOptions {
  /**
   * Longest sleep with nothing scheduled. Leases of a process that died are
   * found by whichever process wakes next, so this bounds how late such a
   * task is picked up when nothing else wakes anyone.
   */
  readonly maxSleepMs: number;
}

/** Reports what one claim step did, for lateness metrics and tests. */
export type ClaimObserver = (result: ClaimResult) => void;

type State =
  | { readonly kind: "idle" }
  | { readonly kind: "running" }
  | { readonly kind: "closed" };

/**
 * Starts queued tasks the moment their user's windows allow. It sleeps until
 * the earliest moment something is due (a user's head task, a retry, a lease
 * running out), or until woken: by a publish on the wake channel when a user
 * becomes due anywhere, or by a slot freeing up here. No loop per user, and
 * nothing polls: with nothing due it sends one claim per maxSleepMs.
 */
export class Drainer {
  private state: State = { kind: "idle" };
  private again = false;
  private cancelTimer: (() => void) | undefined;
  private wakeAt = Infinity;
  /** Redis clock minus local clock, ms, from the latest claim. */
  private offsetMs = 0;
  /** Due users were left waiting for a free slot. */
  private waitingForSlot = false;
  private failures = 0;

  constructor(
    private readonly queue: TaskQueue,
    private readonly runner: TaskRunner,
    private readonly subscriber: Redis,
    private readonly wakeChannel: string,
    private readonly logger: Logger,
    private readonly clock: Clock,
    private readonly options: DrainerOptions,
    private readonly observe: ClaimObserver = () => {},
  ) {}

  async start(): Promise<void> {
    this.subscriber.on("message", this.onMessage);
    // After a reconnect, wakes published meanwhile were missed: look again.
    this.subscriber.on("ready", this.onReconnect);
    this.runner.on("slot-free", this.onSlotFree);
    await this.subscriber.subscribe(this.wakeChannel);
    void this.cycle();
  }

  private readonly onMessage = (channel: string, message: string): void => {
    if (channel !== this.wakeChannel) return;
    const due = Number(message);
    this.schedule(Number.isFinite(due) ? due - this.offsetMs : this.clock.now());
  };

  private readonly onReconnect = (): void => {
    void this.cycle();
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

  private async cycle(): Promise<void> {
    if (this.state.kind === "closed") return;
    if (this.state.kind === "running") {
      this.again = true;
      return;
    }
    this.state = { kind: "running" };
    try {
      do {
        this.again = false;
        const before = this.clock.now();
        const result = await this.queue.claim(this.runner.freeSlots);
        const after = this.clock.now();
        this.offsetMs = result.now - (before + after) / 2;
        this.failures = 0;
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
    this.wakeAt = Infinity; // forget the old plan; schedule() replaces its timer
    this.schedule(next);
  }

  /** Stops claiming; running tasks are the runner's to finish. Idempotent. */
  async close(): Promise<void> {
    if (this.state.kind === "closed") return;
    this.state = { kind: "closed" };
    this.cancelTimer?.();
    this.runner.off("slot-free", this.onSlotFree);
    this.subscriber.off("message", this.onMessage);
    this.subscriber.off("ready", this.onReconnect);
    await this.subscriber.unsubscribe(this.wakeChannel).catch(() => {});
  }
}
