import type { HandlerSet, TaskInput } from "./handlers.js";
import type { Logger } from "./logger.js";
import type { TaskQueue } from "./task-queue.js";

export interface TaskRunnerOptions {
  /** An attempt running longer than this is aborted and counts as failed. */
  readonly attemptTimeoutMs: number;
}

/**
 * Runs started tasks in this process: the handler for the task's kind, under
 * a timeout, then records the outcome. The task already holds a lease in
 * Redis, taken when it started.
 */
export class TaskRunner {
  private readonly running = new Set<Promise<void>>();
  private readonly stopping = new AbortController();

  constructor(
    private readonly queue: TaskQueue,
    private readonly handlers: HandlerSet,
    private readonly logger: Logger,
    private readonly options: TaskRunnerOptions,
  ) {}

  get runningCount(): number {
    return this.running.size;
  }

  start(task: TaskInput): void {
    const run = this.run(task).finally(() => this.running.delete(run));
    this.running.add(run);
  }

  private async run(task: TaskInput): Promise<void> {
    const signal = AbortSignal.any([this.stopping.signal, AbortSignal.timeout(this.options.attemptTimeoutMs)]);
    let result: { ok: true } | { ok: false; error: string };
    try {
      await abortable(this.handlers.handlerFor(task.kind)(task, { signal }), signal);
      result = { ok: true };
    } catch (error) {
      result = { ok: false, error: error instanceof Error ? error.message : String(error) };
      this.logger.warn({ taskId: task.taskId, userId: task.userId, error: result.error }, "task attempt failed");
    }
    try {
      await this.queue.finish(task.taskId, result);
    } catch (error) {
      // The lease stays in Redis and runs out; the task is then run again.
      this.logger.error({ err: error, taskId: task.taskId }, "could not record a task's outcome");
    }
  }

  /** Waits up to graceMs for running tasks, then aborts what is left. */
  async close(graceMs: number): Promise<void> {
    const all = Promise.allSettled([...this.running]);
    const timer = setTimeout(() => this.stopping.abort(new Error("server stopping")), graceMs);
    await all;
    clearTimeout(timer);
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
