// The runner's bookkeeping per attempt: two attempts of one task in one
// process (a lease ran out while its process lived and the task came back
// here), and an attempt whose handler ignores its abort and runs past its
// timeout. A fake queue stands in for Redis; the clock is faked where timers
// decide the outcome, real where a handler's own run time is the point.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setImmediate as tick, setTimeout as sleep } from "node:timers/promises";
import type { Clock } from "../src/clock.js";
import { systemClock } from "../src/clock.js";
import type { HandlerSet, TaskHandler, TaskInput } from "../src/handlers.js";
import { createLogger } from "../src/logger.js";
import type { AttemptResult, FinishOutcome, TaskQueue } from "../src/task-queue.js";
import { TaskRunner, type TaskRunnerOptions } from "../src/task-runner.js";

interface Recorded {
  readonly taskId: string;
  readonly attempt: number;
  readonly ok: boolean;
  readonly at: number;
}

/** The queue calls the runner makes, recorded instead of sent to Redis. */
class FakeQueue {
  readonly finished: Recorded[] = [];
  readonly renewed: string[][] = [];
  readonly released: { taskId: string; attempt: number }[] = [];

  async finish(task: { readonly taskId: string; readonly attempt: number }, result: AttemptResult): Promise<FinishOutcome> {
    this.finished.push({ taskId: task.taskId, attempt: task.attempt, ok: result.ok, at: Date.now() });
    return result.ok ? "succeeded" : "retry-scheduled";
  }

  async renew(taskIds: readonly string[]): Promise<number> {
    this.renewed.push([...taskIds]);
    return taskIds.length;
  }

  async release(task: { readonly taskId: string; readonly attempt: number }): Promise<boolean> {
    this.released.push({ taskId: task.taskId, attempt: task.attempt });
    return true;
  }
}

/** Timers that fire only when the test advances time. */
class ManualClock implements Clock {
  private time = 1_000_000;
  private timers: { at: number; callback: () => void }[] = [];

  now(): number {
    return this.time;
  }

  setTimer(callback: () => void, ms: number): () => void {
    const timer = { at: this.time + Math.max(0, ms), callback };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  }

  advance(ms: number): void {
    const until = this.time + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= until).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.time = due.at;
      due.callback();
    }
    this.time = until;
  }
}

function handlerSet(handler: TaskHandler): HandlerSet {
  return { kinds: new Set<string>(), handlerFor: () => handler, close: async () => {} };
}

function newRunner(queue: FakeQueue, handler: TaskHandler, clock: Clock, options: Partial<TaskRunnerOptions>): TaskRunner {
  return new TaskRunner(queue as unknown as TaskQueue, handlerSet(handler), createLogger("silent"), clock, {
    concurrency: 4,
    attemptTimeoutMs: 60_000,
    leaseMs: 3_000,
    retryBaseMs: 1_000,
    retryMaxMs: 10_000,
    ...options,
  });
}

function task(taskId: string, attempt: number): TaskInput {
  return { taskId, userId: "u", kind: "", payload: new Uint8Array(), attempt };
}

/** Lets promise callbacks and I/O callbacks run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await tick();
}

describe("task runner attempts", () => {
  test("two attempts of one task in one runner each hold a slot, keep renewing, and are waited for by close", async () => {
    const clock = new ManualClock();
    const queue = new FakeQueue();
    const ends = new Map<number, () => void>();
    const aborted: number[] = [];
    const runner = newRunner(queue, (input, { signal }) => {
      signal.addEventListener("abort", () => aborted.push(input.attempt));
      return new Promise<void>((resolve) => ends.set(input.attempt, resolve));
    }, clock, { concurrency: 4, leaseMs: 3_000 });

    runner.start(task("t1", 1));
    runner.start(task("t1", 2));
    await settle();
    assert.equal(runner.freeSlots, 2, "two attempts running in 4 slots leave 2 free");

    ends.get(1)!();
    await settle();
    assert.deepEqual(queue.finished.map((f) => f.attempt), [1]);
    assert.equal(runner.freeSlots, 3, "attempt 1 ended; attempt 2 still holds its slot");

    clock.advance(1_000); // a third of the lease
    await settle();
    assert.deepEqual(queue.renewed.at(-1), ["t1"], "attempt 2's lease is still renewed");

    let closed = false;
    const closing = runner.close(60_000).then(() => (closed = true));
    await settle();
    assert.equal(closed, false, "close waits for attempt 2");
    assert.deepEqual(aborted, [], "attempt 2 is not aborted before the grace period ends");

    ends.get(2)!();
    await closing;
    assert.deepEqual(queue.finished.map((f) => `${f.attempt}:${f.ok}`), ["1:true", "2:true"]);
    assert.equal(runner.freeSlots, 4);
  });

  test("an attempt that ignores its abort past the timeout keeps its slot until it settles; its retry never runs beside it", async () => {
    const queue = new FakeQueue();
    let active = 0;
    let mostActive = 0;
    let firstSettledAt = 0;
    let retryStartedAt = 0;
    const runner = newRunner(queue, async (input) => {
      active++;
      mostActive = Math.max(mostActive, active);
      if (input.attempt === 1) {
        await sleep(1_500); // ignores the abort signal
        firstSettledAt = Date.now();
      } else {
        retryStartedAt = Date.now();
      }
      active--;
    }, systemClock, { concurrency: 1, attemptTimeoutMs: 300 });
    // What the drainer does: start the retry as soon as a slot is free.
    runner.on("slot-free", () => {
      if (retryStartedAt === 0 && runner.freeSlots > 0 && queue.finished.some((f) => !f.ok)) runner.start(task("t2", 2));
    });

    const startedAt = Date.now();
    runner.start(task("t2", 1));
    await sleep(800);
    const failed = queue.finished.find((f) => f.attempt === 1);
    assert.ok(failed && !failed.ok, "attempt 1 is recorded as failed at its timeout");
    assert.ok(failed.at - startedAt < 1_200, `attempt 1 recorded ${failed.at - startedAt} ms after its start`);
    assert.equal(runner.freeSlots, 0, "the overrunning handler still holds the only slot");

    const deadline = Date.now() + 5_000;
    while (retryStartedAt === 0 && Date.now() < deadline) await sleep(25);
    assert.ok(retryStartedAt > 0, "the retry started once attempt 1's handler settled");
    assert.ok(retryStartedAt >= firstSettledAt, "the retry started after attempt 1 settled");
    assert.equal(mostActive, 1, "never more than one handler at once with concurrency 1");
    await runner.close(1_000);
  });
});
