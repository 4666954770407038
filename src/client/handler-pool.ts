import { setTimeout as sleep } from "node:timers/promises";

/**
 * A worker's handlers running now, across its sessions: at most `size` at
 * once. Worker-wide rather than per stream because a handler of a stream that
 * ended keeps running until it returns (its signal is aborted, but it may
 * ignore that), and the tasks of the next stream must wait for its slot: the
 * server counts only the new stream's assignments, so only the worker can
 * keep its own promise of `concurrency`.
 */
export class HandlerPool {
  readonly #running = new Map<AbortController, Promise<void>>();
  #onFreed: () => void = () => {};

  constructor(readonly size: number) {}

  /** Slots not taken. */
  get free(): number {
    return this.size - this.#running.size;
  }

  /** Called after each handler returns, when its slot is free again. */
  onFreed(listener: () => void): void {
    this.#onFreed = listener;
  }

  /** Runs `work` (which must not reject) in a slot; the caller checked `free`. */
  run(controller: AbortController, work: () => Promise<void>): void {
    const settled = work().finally(() => {
      this.#running.delete(controller);
      this.#onFreed();
    });
    this.#running.set(controller, settled);
  }

  /** Resolves true once no handler runs, or false at `deadlineMs` (epoch ms) if some still do. */
  async idle(deadlineMs: number): Promise<boolean> {
    while (this.#running.size > 0) {
      const leftMs = deadlineMs - Date.now();
      if (leftMs <= 0) return false;
      const timer = new AbortController();
      await Promise.race([
        Promise.allSettled(this.#running.values()),
        sleep(leftMs, undefined, { signal: timer.signal }).catch(() => {}),
      ]);
      timer.abort();
    }
    return true;
  }

  /** Aborts every running handler's signal with `reason`. */
  abortAll(reason: Error): void {
    for (const controller of this.#running.keys()) controller.abort(reason);
  }
}
