import { EventEmitter } from "node:events";
import type { Clock } from "./clock.js";
import type { HandlerSet, TaskInput } from "./handlers.js";
import type { Logger } from "./logger.js";
import { metrics } from "./metrics.js";
import type { AttemptResult, TaskQueue } from "./task-queue.js";

export interface TaskRunnerOptions {
  /** Tasks running at once in this process. */
  readonly concurrency: number;
  /** An attempt running longer than this is aborted and counts as failed. */
  readonly attemptTimeoutMs: number;
  /** Length of a running task's lease; it is renewed every third of it. */
  readonly leaseMs: number;
  /** Backoff before the second attempt; doubles for each one after, jittered. */
  readonly retryBaseMs: number;
  readonly retryMaxMs: number;
}

/**
 * Runs started tasks in this process under a concurrency cap: the handler for
 * the task's kind, under a timeout, while the task's lease in Redis is renewed;
 * then records the outcome (success, retry after backoff, or dead letter).
 * Emits "slot-free" whenever a task ends.
 */
export class TaskRunner extends EventEmitter<{ "slot-free": [] }> {
  private readonly running = new Map<string, Promise<void>>();
  private reserved = 0;
  private readonly stopping = new AbortController();
  private cancelRenewal: (() => void) | undefined;

  constructor(
    private readonly queue: TaskQueue,
    private readonly handlers: HandlerSet,
    private readonly logger: Logger,
    private readonly clock: Clock,
    private readonly options: TaskRunnerOptions,
  ) {
    super();
  }

  get freeSlots(): number {
    return Math.max(0, this.options.concurrency - this.running.size - this.reserved);
  }

  /**
   * Set by the drainer while due tasks wait for a slot here: new Submits then
   * queue behind them instead of taking the slots first.
   */
  dueTasksWaiting = false;

  /** Holds a slot for a task about to be admitted; false when none is free. */
  reserve(): boolean {
    if (this.freeSlots === 0 || this.dueTasksWaiting || this.stopping.signal.aborted) return false;
    this.reserved++;
    return true;
  }

  /** Gives back a reserved slot that was not used. */
  release(): void {
    this.reserved = Math.max(0, this.reserved - 1);
    this.emit("slot-free");
  }

  /** Runs a started task; `reserved` says it fills a slot taken with reserve(). */
  start(task: TaskInput, reserved = false): void {
    if (reserved) this.reserved = Math.max(0, this.reserved - 1);
    const run = this.run(task).finally(() => {
      this.running.delete(task.taskId);
      if (this.running.size === 0) this.stopRenewal();
      this.emit("slot-free");
    });
    this.running.set(task.taskId, run);
    this.startRenewal();
  }

  private async run(task: TaskInput): Promise<void> {
    metrics.started.inc();
    const timer = metrics.taskSeconds.startTimer();
    // One controller per attempt, aborted by its own timer or by stopping: a
    // plain timer cleared at the end costs less than AbortSignal.timeout/any.
    const attempt = new AbortController();
    const timeout = setTimeout(() => attempt.abort(new Error("timed out")), this.options.attemptTimeoutMs);
    const stop = (): void => attempt.abort(this.stopping.signal.reason);
    this.stopping.signal.addEventListener("abort", stop, { once: true });
    let result: AttemptResult;
    try {
      await abortable(this.handlers.handlerFor(task.kind)(task, { signal: attempt.signal }), attempt.signal);
      result = { ok: true };
    } catch (error) {
      if (this.stopping.signal.aborted) {
        // Stopped mid-attempt: the lease runs out and another process runs the
        // task again, without this stop counting against its attempts' outcome.
        return;
      }
      const message = attempt.signal.aborted
        ? `timed out after ${this.options.attemptTimeoutMs} ms`
        : error instanceof Error
          ? error.message
          : String(error);
      result = { ok: false, error: message };
    } finally {
      clearTimeout(timeout);
      this.stopping.signal.removeEventListener("abort", stop);
    }
    timer();
    try {
      const outcome = await this.queue.finish(task, result, this.retryDelayMs(task.attempt));
      if (outcome === "succeeded") metrics.completed.inc();
      if (outcome === "retry-scheduled" || outcome === "dead") metrics.failed.inc();
      if (outcome === "dead") metrics.dead.inc();
      if (!result.ok) {
        this.logger.warn({ taskId: task.taskId, userId: task.userId, attempt: task.attempt, error: result.error, outcome }, "task attempt failed");
      } else if (outcome === "lease-lost") {
        this.logger.warn({ taskId: task.taskId, attempt: task.attempt }, "task finished after its lease ran out; it may run again");
      }
    } catch (error) {
      // The lease stays in Redis and runs out; the task is then run again.
      this.logger.error({ err: error, taskId: task.taskId }, "could not record a task's outcome");
    }
  }

  /** Full-jitter exponential backoff: [d/2, d] with d = base * 2^(attempt-1), capped. */
  private retryDelayMs(attempt: number): number {
    const ceiling = Math.min(this.options.retryMaxMs, this.options.retryBaseMs * 2 ** Math.max(0, attempt - 1));
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  private startRenewal(): void {
    if (this.cancelRenewal) return;
    const renew = (): void => {
      this.cancelRenewal = this.clock.setTimer(renew, this.options.leaseMs / 3);
      this.queue.renew([...this.running.keys()]).catch((error: unknown) => {
        this.logger.warn({ error: (error as Error).message }, "could not renew task leases");
      });
    };
    this.cancelRenewal = this.clock.setTimer(renew, this.options.leaseMs / 3);
  }

  private stopRenewal(): void {
    this.cancelRenewal?.();
    this.cancelRenewal = undefined;
  }

  /**
   * Stops taking tasks, waits up to graceMs for running ones, then aborts the
   * rest; their leases run out and other processes run them again.
   */
  async close(graceMs: number): Promise<void> {
    const all = Promise.allSettled([...this.running.values()]);
    const cancel = this.clock.setTimer(() => this.stopping.abort(new Error("server stopping")), graceMs);
    if (this.running.size === 0) this.stopping.abort(new Error("server stopping"));
    await all;
    cancel();
    this.stopRenewal();
  }
}

/** Settles when the handler does, or rejects when the signal aborts first. */
function abortable(work: Promise<void> | void, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    Promise.resolve(work).then(
      () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
