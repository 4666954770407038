import { metrics } from "../metrics.js";
import type { Clock } from "./clock.js";
import type { Logger } from "../logger.js";
import { PartitionSchedule, type PlannedClaim } from "./partition-schedule.js";
import {
  EVERY_KIND,
  type Claimer,
  type ClaimResult,
  type HeldTask,
  type TaskStore,
  type Unsubscribe,
  type Wake,
} from "./store.js";
import { randomId } from "./task-id.js";
import type { TaskRunner } from "./task-runner.js";

export interface DrainerOptions {
  /**
   * Longest sleep with nothing scheduled in a partition. Leases of a process
   * that died are found by whichever process claims there next, so this
   * bounds how late such a task is picked up when nothing else wakes anyone.
   */
  readonly maxSleepMs: number;
  /** The kinds its runner runs, and whether it routes (see Claimer); default: every kind. */
  readonly claimer?: Claimer;
}

/**
 * Claims whose reply never came (a client-side timeout, a dropped connection)
 * remembered at most, per partition: each is looked up before that
 * partition's next claim, so only a long outage piles them up, and their
 * records in Redis expire anyway.
 */
const MAX_UNANSWERED_CLAIMS = 20;

/** Reports what one claim did, for lateness metrics and tests. */
export type ClaimObserver = (result: ClaimResult) => void;

/**
 * Starts queued tasks the moment their user's windows allow, in every
 * partition of the store. Each partition is claimed on its own schedule (its
 * next due user, retry, lease running out), and claims to different
 * partitions run side by side: on Redis Cluster they are different masters,
 * and one that is failing over only backs itself off. One timer serves them
 * all; the store's wake-ups and freed slots here bring claims forward. No
 * loop per user, and nothing polls: with nothing due, each partition gets one
 * claim per maxSleepMs. When slots are scarce, the longest-waiting users get
 * them whichever partition they are in (see PartitionSchedule).
 */
export class Drainer {
  private closed = false;
  private readonly schedule: PartitionSchedule;
  private timer: { readonly at: number; readonly cancel: () => void } | undefined;
  /** Claims in flight, which close() waits for. */
  private readonly inFlight = new Set<Promise<void>>();
  /** By partition: ids of claims that may have run in Redis though their reply never came. */
  private readonly unanswered: string[][];
  private readonly claimIdPrefix = randomId();
  private claimCount = 0;
  /**
   * Redis clock minus local clock, ms, by partition, from its latest claim:
   * on Redis Cluster each partition's moments come from its own master's
   * clock. The latest of any stands in for a partition not claimed yet.
   */
  private readonly offsetsMs: (number | undefined)[];
  private latestOffsetMs = 0;
  private unsubscribe: Unsubscribe | undefined;
  private readonly claimer: Claimer;

  constructor(
    private readonly store: TaskStore,
    private readonly runner: TaskRunner,
    private readonly logger: Logger,
    private readonly clock: Clock,
    options: DrainerOptions,
    private readonly observe: ClaimObserver = () => {},
  ) {
    this.schedule = new PartitionSchedule(store.partitions, options.maxSleepMs);
    this.claimer = options.claimer ?? EVERY_KIND;
    this.unanswered = Array.from({ length: store.partitions }, () => []);
    this.offsetsMs = Array.from({ length: store.partitions }, () => undefined);
  }

  /** Subscribes to wake-ups and claims from every partition; rejects when the store cannot be reached. */
  async start(): Promise<void> {
    const stopWakes = await this.store.onWake(this.onWake);
    let stopCancels: Unsubscribe;
    try {
      // CancelTask of a task running here aborts its handler.
      stopCancels = await this.store.onCancel((taskId) => this.runner.cancel(taskId));
    } catch (error) {
      await stopWakes().catch(() => {});
      throw error;
    }
    const unsubscribe: Unsubscribe = async () => {
      await Promise.all([stopWakes(), stopCancels()]);
    };
    if (this.closed) {
      await unsubscribe();
      return;
    }
    this.unsubscribe = unsubscribe;
    this.runner.on("slot-free", this.onSlotFree);
    // Leases of processes that died meanwhile may be in any partition.
    this.schedule.lookEverywhere(this.clock.now());
    this.pump();
  }

  private readonly onWake = (wake: Wake | undefined): void => {
    if (this.closed) return;
    // Wakes may have been missed (a reconnect): look everywhere.
    if (wake === undefined) this.schedule.lookEverywhere(this.clock.now());
    else if (!this.concerns(wake)) return;
    else this.schedule.wake(wake.partition, this.toLocal(wake.partition, wake.dueAt));
    this.pump();
  };

  /** A user parked under a kind is for claimers of that kind; a due user, for claimers that route. */
  private concerns(wake: Wake): boolean {
    return wake.kind === undefined ? this.claimer.routes : this.claimer.kinds.includes(wake.kind);
  }

  private readonly onSlotFree = (): void => {
    if (this.schedule.waitingForSlot(this.clock.now())) this.pump();
  };

  private toLocal(partition: number, redisMs: number): number {
    return redisMs - (this.offsetsMs[partition] ?? this.latestOffsetMs);
  }

  /** Sends every claim whose moment has come, then sets the timer for the next. */
  private pump(): void {
    if (this.closed) return;
    const now = this.clock.now();
    for (const planned of this.schedule.takeClaims(now, this.runner.freeSlots)) {
      const claim = this.claim(planned).finally(() => this.inFlight.delete(claim));
      this.inFlight.add(claim);
    }
    this.runner.dueTasksWaiting = this.schedule.dueTasksWaiting;
    this.setTimer(this.schedule.nextMoment(now));
  }

  private setTimer(at: number): void {
    if (this.timer?.at === at) return;
    this.timer?.cancel();
    this.timer = undefined;
    if (at === Infinity) return;
    const cancel = this.clock.setTimer(() => {
      this.timer = undefined;
      this.pump();
    }, at - this.clock.now());
    this.timer = { at, cancel };
  }

  /** Claims from one partition and starts what it took; never rejects. */
  private async claim({ partition, maxClaims }: PlannedClaim): Promise<void> {
    try {
      await this.settleUnanswered(partition);
      if (this.closed) return;
      const claimId = `${this.claimIdPrefix}.${++this.claimCount}`;
      const before = this.clock.now();
      let result: ClaimResult;
      try {
        result = await this.store.claim(partition, maxClaims, claimId, this.claimer);
      } catch (error) {
        // It may still have run in Redis (a timeout while Redis was busy):
        // look up what it took before this partition's next claim instead of
        // leaving that to wait out its leases.
        const unanswered = this.unanswered[partition]!;
        unanswered.push(claimId);
        if (unanswered.length > MAX_UNANSWERED_CLAIMS) unanswered.shift();
        throw error;
      }
      const after = this.clock.now();
      this.latestOffsetMs = result.now - (before + after) / 2;
      this.offsetsMs[partition] = this.latestOffsetMs;
      if (this.closed) {
        // Closed while the claim was in flight: hand back what it took.
        await this.handBack(result.claimed);
        return;
      }
      for (const task of result.claimed) this.runner.start(task);
      // The runner counts the tasks it dead-letters; these died in the claim.
      if (result.deadLettered) metrics.dead.inc(result.deadLettered);
      if (result.expired) metrics.expired.inc(result.expired);
      if (result.cancelled) metrics.cancelled.inc(result.cancelled);
      this.observe(result);
      const local = (redisMs: number | undefined): number | undefined =>
        redisMs === undefined ? undefined : this.toLocal(partition, redisMs);
      this.schedule.settled(
        partition,
        {
          claimed: result.claimed.length,
          dueLeft: result.nextDue !== undefined && result.nextDue <= result.now,
          nextDue: local(result.nextDue),
          nextRetry: local(result.nextRetry),
          nextLeaseExpiry: local(result.nextLeaseExpiry),
        },
        this.clock.now(),
      );
    } catch (error) {
      if (this.closed) return;
      if (this.schedule.failed(partition, this.clock.now())) {
        this.logger.warn({ error: (error as Error).message, partition }, "drainer cannot claim; retrying");
      }
    }
    // Slots it did not use, or a partition with more due, may be waiting.
    this.pump();
  }

  /** Hands back what a partition's claims without a reply took, if they ran; throws when Redis does not answer. */
  private async settleUnanswered(partition: number): Promise<void> {
    const unanswered = this.unanswered[partition]!;
    while (unanswered.length > 0) {
      const tasks = await this.store.claimedBy(partition, unanswered[0]!);
      unanswered.shift();
      if (tasks.length > 0) {
        this.logger.warn(
          { tasks: tasks.length, partition },
          "a claim whose reply was lost had taken tasks; handing them back",
        );
        await this.handBack(tasks);
      }
    }
  }

  /** Puts claimed tasks that will not run here back at the head of their queues. */
  private async handBack(tasks: readonly HeldTask[]): Promise<void> {
    await Promise.all(
      tasks.map((task) =>
        this.store.release(task).then(
          (outcome) => {
            // Marked by CancelTask meanwhile: the release ended it cancelled.
            if (outcome === "cancelled") metrics.cancelled.inc();
          },
          (error: unknown) => {
            this.logger.warn(
              { error: (error as Error).message, taskId: task.taskId },
              "could not hand a claimed task back; it runs when its lease runs out",
            );
          },
        ),
      ),
    );
  }

  /**
   * Stops claiming. Claims in flight are waited for and what they took is
   * handed back, as is what claims without a reply took; running tasks are
   * the runner's to finish. Idempotent.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.timer?.cancel();
    this.timer = undefined;
    this.runner.off("slot-free", this.onSlotFree);
    const unsubscribed = this.unsubscribe?.().catch(() => {});
    await Promise.all(this.inFlight);
    await Promise.all(
      this.unanswered.map((_, partition) =>
        this.settleUnanswered(partition).catch((error: unknown) => {
          this.logger.warn(
            { error: (error as Error).message, partition },
            "could not look up claims whose reply was lost; their tasks run when their leases run out",
          );
        }),
      ),
    );
    await unsubscribed;
  }
}
