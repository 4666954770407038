import { EventEmitter } from "node:events";
import type { Clock } from "./clock.js";
import type { HandlerSet, TaskHandler, TaskInput } from "./handlers.js";
import type { Logger } from "../logger.js";
import { metrics } from "../metrics.js";
import type { AttemptResult, LeasedTask, TaskStore } from "./store.js";
import { noTracing, type AttemptTrace, type TaskTraceContext, type TaskTracer } from "./task-tracer.js";

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
  /** Sees each attempt start and end (src/tracing.ts); absent: no tracing. */
  readonly tracer?: TaskTracer;
}

/** The abort reason, and the attempt's error, of a handler aborted by CancelTask. */
const CANCELLED = "cancelled (CancelTask)";

/**
 * Thrown by a handler whose attempt ran to no outcome and should run again
 * elsewhere (the remote worker running it went away): the task is handed
 * back to the head of its queue, and the attempt does not count.
 */
export class AttemptHandedBack extends Error {}

/** A handler's error that says not to retry: `doNotRetry: true` on the error (workers' do_not_retry). */
function retryable(error: unknown): boolean {
  return !(typeof error === "object" && error !== null && (error as { doNotRetry?: unknown }).doNotRetry === true);
}

/** The queue calls the runner makes. */
export type RunnerQueue = Pick<TaskStore, "finish" | "renew" | "release">;

/**
 * A task to run, with the claim that took it when a drainer claimed it, and
 * its Submit's trace when it has one.
 */
export type StartedTask = TaskInput & { readonly claimId?: string; readonly trace?: TaskTraceContext | undefined };

/**
 * One attempt running here. Attempts are kept by identity, not by task id:
 * when a lease runs out while its process lives on, that process may claim
 * the same task again, and both attempts then run here at once.
 */
interface Attempt {
  readonly task: StartedTask;
  /** Settles once the outcome is recorded or the task handed back. */
  readonly recorded: Promise<void>;
  /** Settles once the handler has too: it may run on past its timeout. */
  readonly settled: Promise<void>;
  /** Until the outcome is recorded, the lease is this attempt's to renew. */
  holdsLease: boolean;
  /** Aborts the handler's signal. */
  readonly controller: AbortController;
}

/**
 * Runs started tasks in this process under a concurrency cap: the handler for
 * the task's kind, under a timeout, while the task's lease in Redis is renewed;
 * then records the outcome (success, retry after backoff, or dead letter).
 * A slot stays taken until the handler has really ended, even one that ignores
 * its abort past the timeout, so a retry never runs beside it past the cap.
 * Emits "slot-free" whenever a slot frees up.
 */
export class TaskRunner extends EventEmitter<{ "slot-free": [] }> {
  private readonly running = new Set<Attempt>();
  /** Hand-backs in flight, which close() waits for. */
  private readonly handingBack = new Set<Promise<void>>();
  private reserved = 0;
  /** Set by close(): nothing new starts here; what would is handed back. */
  private closing = false;
  private closed: Promise<void> | undefined;
  /** Aborted when the grace period ends: attempts still running are cut short. */
  private readonly stopping = new AbortController();
  private cancelRenewal: (() => void) | undefined;
  private concurrency: number;

  constructor(
    private readonly queue: RunnerQueue,
    private readonly handlers: HandlerSet,
    private readonly logger: Logger,
    private readonly clock: Clock,
    private readonly options: TaskRunnerOptions,
  ) {
    super();
    this.concurrency = options.concurrency;
  }

  get freeSlots(): number {
    return Math.max(0, this.concurrency - this.running.size - this.reserved);
  }

  /** Tasks at once from now on (remote workers come and go); more frees slots at once. */
  setConcurrency(concurrency: number): void {
    const more = concurrency > this.concurrency;
    this.concurrency = concurrency;
    if (more) this.emit("slot-free");
  }

  /**
   * Set by the drainer while due tasks wait for a slot here: new Submits then
   * queue behind them instead of taking the slots first.
   */
  dueTasksWaiting = false;

  /** Holds a slot for a task about to be admitted; false when none is free. */
  reserve(): boolean {
    if (this.freeSlots === 0 || this.dueTasksWaiting || this.closing) return false;
    this.reserved++;
    return true;
  }

  /** Gives back a reserved slot that was not used. */
  release(): void {
    this.reserved = Math.max(0, this.reserved - 1);
    this.emit("slot-free");
  }

  /**
   * Aborts the handler of the task `taskId` if it runs here (CancelTask
   * marked it): the attempt fails, and finish ends the task cancelled.
   */
  cancel(taskId: string): void {
    for (const attempt of this.running) {
      if (attempt.task.taskId === taskId && attempt.holdsLease) {
        attempt.controller.abort(new Error(CANCELLED));
      }
    }
  }

  /**
   * Runs a started task; `reserved` says it fills a slot taken with reserve().
   * Once closing, the task is handed back instead, for another process to run.
   */
  start(task: StartedTask, reserved = false): void {
    if (reserved) this.reserved = Math.max(0, this.reserved - 1);
    if (this.closing) {
      void this.handBack(task);
      this.emit("slot-free");
      return;
    }
    metrics.started.inc();
    const timer = metrics.taskSeconds.startTimer();
    // One controller per attempt, aborted by its own timer or by stopping.
    const controller = new AbortController();
    const cancelTimeout = this.clock.setTimer(
      () => controller.abort(new Error("timed out")),
      this.options.attemptTimeoutMs,
    );
    const stop = (): void => controller.abort(this.stopping.signal.reason);
    this.stopping.signal.addEventListener("abort", stop, { once: true });
    const trace = (this.options.tracer ?? noTracing).attemptStarted({
      taskId: task.taskId,
      userId: task.userId,
      kind: task.kind,
      attempt: task.attempt,
      trace: task.trace,
      claimed: task.claimId !== undefined,
    });
    const handler = this.handlers.handlerFor(task.kind);
    const handling = trace.run(() => callHandler(handler, task, controller.signal));
    let handlerEnded = false;
    const ended = (): void => {
      handlerEnded = true;
    };
    const settled = handling.then(ended, ended);
    const recorded = this.attempt(task, handling, controller.signal, trace, () => {
      cancelTimeout();
      this.stopping.signal.removeEventListener("abort", stop);
      timer();
    });
    const entry: Attempt = { task, recorded, settled, holdsLease: true, controller };
    this.running.add(entry);
    this.startRenewal();
    void recorded.then(async () => {
      entry.holdsLease = false;
      if (!handlerEnded) {
        // It ignored its abort: keep its slot until it really ends.
        const outcomeAt = this.clock.now();
        await settled;
        this.logger.warn(
          { taskId: task.taskId, attempt: task.attempt, overrunMs: this.clock.now() - outcomeAt },
          "a task handler ignored its abort and ran on after its attempt ended; its slot was held until it returned",
        );
      }
      this.running.delete(entry);
      if (![...this.running].some((attempt) => attempt.holdsLease)) this.stopRenewal();
      this.emit("slot-free");
    });
  }

  /** Waits for the handler's outcome (or its abort) and records it; never rejects. */
  private async attempt(
    task: StartedTask,
    handling: Promise<void>,
    signal: AbortSignal,
    trace: AttemptTrace,
    ended: () => void,
  ): Promise<void> {
    let result: AttemptResult;
    try {
      await abortable(handling, signal);
      result = { ok: true };
    } catch (error) {
      if (this.stopping.signal.aborted || error instanceof AttemptHandedBack) {
        ended();
        // Cut short by stopping, or its remote worker went away: hand it
        // back so another process runs it at once, and the interrupted run
        // does not count as an attempt.
        trace.end("handed-back");
        await this.handBack(task);
        return;
      }
      result = {
        ok: false,
        ...(signal.aborted || retryable(error) ? {} : { retry: false as const }),
        error: signal.aborted
          ? signal.reason instanceof Error && signal.reason.message === CANCELLED
            ? CANCELLED
            : `timed out after ${this.options.attemptTimeoutMs} ms`
          : error instanceof Error
            ? error.message
            : String(error),
      };
    }
    ended();
    try {
      const outcome = await this.queue.finish(task, result, this.retryDelayMs(task.attempt));
      trace.end(outcome, result.ok ? undefined : result.error);
      if (outcome === "succeeded") metrics.completed.inc();
      if (outcome === "retry-scheduled" || outcome === "dead") metrics.failed.inc();
      if (outcome === "dead") metrics.dead.inc();
      if (outcome === "cancelled") metrics.cancelled.inc();
      if (!result.ok) {
        this.logger.warn(
          { taskId: task.taskId, userId: task.userId, attempt: task.attempt, error: result.error, outcome },
          "task attempt failed",
        );
      } else if (outcome === "lease-lost") {
        this.logger.warn(
          { taskId: task.taskId, attempt: task.attempt },
          "task finished after its lease ran out; it may run again",
        );
      }
    } catch (error) {
      // The lease stays in Redis and runs out; the task is then run again.
      trace.end("not-recorded", result.ok ? undefined : result.error);
      this.logger.error({ err: error, taskId: task.taskId }, "could not record a task's outcome");
    }
  }

  /** Puts a task this process will not run to an outcome back at the head of its queue; never rejects. */
  private handBack(task: StartedTask): Promise<void> {
    const done = this.queue
      .release({ taskId: task.taskId, userId: task.userId, attempt: task.attempt, claimId: task.claimId })
      .then(
        (outcome) => {
          if (outcome === "released") {
            this.logger.info({ taskId: task.taskId, attempt: task.attempt }, "task handed back to its queue");
          } else if (outcome === "cancelled") {
            // Its cancel was requested while it ran: it ended cancelled instead.
            metrics.cancelled.inc();
          }
        },
        (error: unknown) => {
          this.logger.warn(
            { error: (error as Error).message, taskId: task.taskId },
            "could not hand a task back; it runs again when its lease runs out",
          );
        },
      )
      .finally(() => this.handingBack.delete(done));
    this.handingBack.add(done);
    return done;
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
      // Per attempt: only those whose outcome is not recorded yet hold a lease.
      const leased = new Map<string, LeasedTask>();
      for (const attempt of this.running) {
        if (attempt.holdsLease) leased.set(attempt.task.taskId, attempt.task);
      }
      this.queue.renew([...leased.values()]).catch((error: unknown) => {
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
   * Stops taking tasks (any started from now on are handed back), waits up to
   * graceMs for running ones, then aborts the rest and hands them back, so
   * another process runs them at once, not after their leases run out.
   * Idempotent.
   */
  close(graceMs: number): Promise<void> {
    this.closed ??= (async () => {
      this.closing = true;
      let cancelGrace: () => void = () => {};
      const graceOver = new Promise<void>((resolve) => (cancelGrace = this.clock.setTimer(resolve, graceMs)));
      await Promise.race([Promise.allSettled([...this.running].map((a) => a.settled)), graceOver]);
      cancelGrace();
      this.stopping.abort(new Error("server stopping"));
      // Handlers that ignore the abort are not waited for; their outcomes are.
      await Promise.allSettled([...this.running].map((a) => a.recorded));
      await Promise.allSettled([...this.handingBack]);
      this.stopRenewal();
    })();
    return this.closed;
  }
}

/** Calls a handler; a synchronous throw becomes a rejection. */
function callHandler(handler: TaskHandler, task: TaskInput, signal: AbortSignal): Promise<void> {
  try {
    return Promise.resolve(handler(task, { signal }));
  } catch (error) {
    return Promise.reject(error);
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
