// The task runner's attempts, on a fake clock with a fake store standing in
// for Redis: two attempts of one task in one process (a lease ran out while
// its process lived and the task came back here); an attempt whose handler
// ignores its abort and runs past its timeout; the retry backoff it asks the
// store for (full jitter in [d/2, d], doubling, capped); a throwing handler
// retried until the store answers "dead"; and the timeout failing an attempt.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setImmediate as tick } from "node:timers/promises";
import type { HandlerSet, TaskHandler, TaskInput } from "../../src/core/handlers.js";
import { createLogger } from "../../src/logger.js";
import { metrics } from "../../src/metrics.js";
import type { AttemptResult, FinishOutcome, LeasedTask, ReleaseOutcome, TaskStore } from "../../src/core/store.js";
import { TaskRunner, type TaskRunnerOptions } from "../../src/core/task-runner.js";
import { FakeClock } from "../support/fake-clock.js";

interface Recorded {
  readonly taskId: string;
  readonly attempt: number;
  readonly result: AttemptResult;
  readonly ok: boolean;
  readonly retryDelayMs: number;
  readonly outcome: FinishOutcome;
  readonly at: number;
}

/**
 * The store calls the runner makes, recorded instead of sent to Redis. Like
 * the Redis store, a failed attempt is retried while attempts remain
 * ("retry-scheduled") and dead-lettered after the last ("dead").
 */
class FakeStore {
  readonly finished: Recorded[] = [];
  readonly renewed: string[][] = [];
  readonly released: { taskId: string; attempt: number }[] = [];

  constructor(
    private readonly clock: FakeClock,
    private readonly maxAttempts = 3,
  ) {}

  async finish(
    task: { readonly taskId: string; readonly attempt: number },
    result: AttemptResult,
    retryDelayMs: number,
  ): Promise<FinishOutcome> {
    const outcome: FinishOutcome = result.ok
      ? "succeeded"
      : task.attempt < this.maxAttempts
        ? "retry-scheduled"
        : "dead";
    this.finished.push({
      taskId: task.taskId,
      attempt: task.attempt,
      result,
      ok: result.ok,
      retryDelayMs,
      outcome,
      at: this.clock.now(),
    });
    return outcome;
  }

  async renew(tasks: readonly LeasedTask[]): Promise<number> {
    const taskIds = tasks.map((task) => task.taskId);
    this.renewed.push(taskIds);
    return taskIds.length;
  }

  async release(task: { readonly taskId: string; readonly attempt: number }): Promise<ReleaseOutcome> {
    this.released.push({ taskId: task.taskId, attempt: task.attempt });
    return "released";
  }
}

function handlerSet(handler: TaskHandler): HandlerSet {
  return { kinds: new Set<string>(), handlerFor: () => handler, close: async () => {} };
}

function newRunner(
  store: FakeStore,
  handler: TaskHandler,
  clock: FakeClock,
  options: Partial<TaskRunnerOptions>,
): TaskRunner {
  return new TaskRunner(store as unknown as TaskStore, handlerSet(handler), createLogger("silent"), clock, {
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

/** Lets promise callbacks run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await tick();
}

/** Replaces Math.random for the duration of `run`. */
async function withRandom<T>(value: number, run: () => Promise<T>): Promise<T> {
  const random = Math.random;
  Math.random = () => value;
  try {
    return await run();
  } finally {
    Math.random = random;
  }
}

async function counter(metric: { get(): Promise<{ values: { value: number }[] }> }): Promise<number> {
  return (await metric.get()).values.reduce((sum, v) => sum + v.value, 0);
}

describe("task runner attempts", () => {
  test("two attempts of one task in one runner each hold a slot, keep renewing, and are waited for by close", async () => {
    const clock = new FakeClock(1_000_000);
    const store = new FakeStore(clock);
    const ends = new Map<number, () => void>();
    const aborted: number[] = [];
    const runner = newRunner(
      store,
      (input, { signal }) => {
        signal.addEventListener("abort", () => aborted.push(input.attempt));
        return new Promise<void>((resolve) => ends.set(input.attempt, resolve));
      },
      clock,
      { concurrency: 4, leaseMs: 3_000 },
    );

    runner.start(task("t1", 1));
    runner.start(task("t1", 2));
    await settle();
    assert.equal(runner.freeSlots, 2, "two attempts running in 4 slots leave 2 free");

    ends.get(1)!();
    await settle();
    assert.deepEqual(
      store.finished.map((f) => f.attempt),
      [1],
    );
    assert.equal(runner.freeSlots, 3, "attempt 1 ended; attempt 2 still holds its slot");

    clock.advance(1_000); // a third of the lease
    await settle();
    assert.deepEqual(store.renewed.at(-1), ["t1"], "attempt 2's lease is still renewed");

    let closed = false;
    const closing = runner.close(60_000).then(() => (closed = true));
    await settle();
    assert.equal(closed, false, "close waits for attempt 2");
    assert.deepEqual(aborted, [], "attempt 2 is not aborted before the grace period ends");

    ends.get(2)!();
    await closing;
    assert.deepEqual(
      store.finished.map((f) => `${f.attempt}:${f.ok}`),
      ["1:true", "2:true"],
    );
    assert.equal(runner.freeSlots, 4);
  });

  test("an attempt that ignores its abort past the timeout keeps its slot until it settles; its retry never runs beside it", async () => {
    const clock = new FakeClock();
    const store = new FakeStore(clock);
    let active = 0;
    let mostActive = 0;
    let endFirst: () => void = () => {};
    let firstSettledAt = -1;
    let retryStartedAt = -1;
    const runner = newRunner(
      store,
      async (input) => {
        active++;
        mostActive = Math.max(mostActive, active);
        if (input.attempt === 1) {
          await new Promise<void>((resolve) => (endFirst = resolve)); // ignores the abort signal
          firstSettledAt = clock.now();
        } else {
          retryStartedAt = clock.now();
        }
        active--;
      },
      clock,
      { concurrency: 1, attemptTimeoutMs: 300 },
    );
    // What the drainer does: start the retry as soon as a slot is free.
    runner.on("slot-free", () => {
      if (retryStartedAt < 0 && runner.freeSlots > 0 && store.finished.some((f) => !f.ok)) runner.start(task("t2", 2));
    });

    runner.start(task("t2", 1));
    clock.advance(299);
    await settle();
    assert.equal(store.finished.length, 0, "nothing recorded before the timeout");
    clock.advance(1);
    await settle();
    const failed = store.finished.find((f) => f.attempt === 1);
    assert.ok(failed && !failed.ok, "attempt 1 is recorded as failed at its timeout");
    assert.equal(failed.at, 300, "recorded at the timeout, not when its handler ends");
    assert.equal(runner.freeSlots, 0, "the overrunning handler still holds the only slot");

    clock.advance(1_200); // the handler runs on, 1.5 s in all
    await settle();
    assert.equal(retryStartedAt, -1, "no retry while attempt 1's handler runs");
    endFirst();
    await settle();
    assert.ok(retryStartedAt >= 0, "the retry started once attempt 1's handler settled");
    assert.ok(retryStartedAt >= firstSettledAt, "the retry started after attempt 1 settled");
    assert.equal(mostActive, 1, "never more than one handler at once with concurrency 1");
    await runner.close(1_000);
  });
});

describe("task runner retries and timeouts", () => {
  const BASE_MS = 1_000;
  const MAX_MS = 10_000;

  /** The retry delay the runner asks the store for after attempt `attempt` fails, with Math.random() = `random`. */
  async function retryDelayAfter(attempt: number, random: number): Promise<number> {
    const clock = new FakeClock();
    const store = new FakeStore(clock, Infinity);
    const runner = newRunner(store, () => Promise.reject(new Error("boom")), clock, {
      retryBaseMs: BASE_MS,
      retryMaxMs: MAX_MS,
    });
    await withRandom(random, async () => {
      runner.start(task("r", attempt));
      await settle();
    });
    await runner.close(0);
    assert.equal(store.finished.length, 1);
    return store.finished[0]!.retryDelayMs;
  }

  test("the retry delay is full jitter in [d/2, d], d = base doubling per attempt, capped at the maximum", async () => {
    const ceilings = [1_000, 2_000, 4_000, 8_000, 10_000, 10_000, 10_000];
    for (const [i, d] of ceilings.entries()) {
      const attempt = i + 1;
      assert.equal(await retryDelayAfter(attempt, 0), d / 2, `attempt ${attempt}: the lowest draw waits d/2`);
      const highest = await retryDelayAfter(attempt, 1 - Number.EPSILON);
      assert.ok(
        highest <= d && highest > d - 1,
        `attempt ${attempt}: the highest draw waits ${highest}, just under d = ${d}`,
      );
      const middle = await retryDelayAfter(attempt, 0.5);
      assert.equal(middle, (3 * d) / 4, `attempt ${attempt}: uniform between the two`);
    }
  });

  test("with real randomness every delay stays in its bounds", async () => {
    for (let attempt = 1; attempt <= 8; attempt++) {
      const d = Math.min(MAX_MS, BASE_MS * 2 ** (attempt - 1));
      const clock = new FakeClock();
      const store = new FakeStore(clock, Infinity);
      const runner = newRunner(store, () => Promise.reject(new Error("boom")), clock, {
        concurrency: 50,
        retryBaseMs: BASE_MS,
        retryMaxMs: MAX_MS,
      });
      for (let i = 0; i < 50; i++) runner.start(task(`j${i}`, attempt));
      await settle();
      await runner.close(0);
      assert.equal(store.finished.length, 50);
      for (const { retryDelayMs } of store.finished) {
        assert.ok(
          retryDelayMs >= d / 2 && retryDelayMs <= d,
          `attempt ${attempt}: ${retryDelayMs} outside [${d / 2}, ${d}]`,
        );
      }
    }
  });

  test("a throwing handler is retried after the backoff the store was given, until the store dead-letters it", async () => {
    const clock = new FakeClock();
    const store = new FakeStore(clock, 3);
    const starts: { attempt: number; at: number }[] = [];
    const handler: TaskHandler = (input) => {
      starts.push({ attempt: input.attempt, at: clock.now() });
      if (input.attempt === 2) throw new Error("thrown synchronously");
      return Promise.reject(new Error(`attempt ${input.attempt} failed`));
    };
    const runner = newRunner(store, handler, clock, { retryBaseMs: BASE_MS, retryMaxMs: MAX_MS });
    const failedBefore = await counter(metrics.failed);
    const deadBefore = await counter(metrics.dead);

    await withRandom(0.5, async () => {
      // What the store and drainer do with "retry-scheduled": run the next attempt after the delay.
      const run = async (attempt: number): Promise<void> => {
        runner.start(task("flaky", attempt));
        await settle();
        const last = store.finished.at(-1)!;
        if (last.outcome === "retry-scheduled") {
          clock.advance(last.retryDelayMs);
          await run(attempt + 1);
        }
      };
      await run(1);
    });

    assert.deepEqual(
      store.finished.map((f) => [f.attempt, f.result, f.outcome]),
      [
        [1, { ok: false, error: "attempt 1 failed" }, "retry-scheduled"],
        [2, { ok: false, error: "thrown synchronously" }, "retry-scheduled"],
        [3, { ok: false, error: "attempt 3 failed" }, "dead"],
      ],
    );
    assert.deepEqual(
      store.finished.map((f) => f.retryDelayMs),
      [750, 1_500, 3_000],
      "3/4 of 1 s, 2 s, 4 s with the draw at 0.5",
    );
    assert.deepEqual(
      starts,
      [
        { attempt: 1, at: 0 },
        { attempt: 2, at: 750 },
        { attempt: 3, at: 2_250 },
      ],
      "each retry ran once its delay had passed",
    );
    assert.equal((await counter(metrics.failed)) - failedBefore, 3, "every failed attempt is counted");
    assert.equal((await counter(metrics.dead)) - deadBefore, 1, "the task is counted dead once");
    assert.equal(runner.freeSlots, 4, "every slot is free again");
    await runner.close(0);
  });

  test("an attempt still running at its timeout is aborted and recorded as failed, then retried", async () => {
    const clock = new FakeClock();
    const store = new FakeStore(clock, 3);
    let abortedAt = -1;
    const runner = newRunner(
      store,
      (_input, { signal }) =>
        new Promise<void>((_resolve, reject) => {
          signal.addEventListener("abort", () => {
            abortedAt = clock.now();
            reject(signal.reason);
          });
        }),
      clock,
      { attemptTimeoutMs: 5_000 },
    );

    runner.start(task("slow", 1));
    clock.advance(4_999);
    await settle();
    assert.equal(store.finished.length, 0, "still running just before its timeout");
    assert.equal(abortedAt, -1);
    clock.advance(1);
    await settle();
    assert.equal(abortedAt, 5_000, "its signal aborted at the timeout");
    assert.deepEqual(
      store.finished.map((f) => [f.attempt, f.result, f.outcome, f.at]),
      [[1, { ok: false, error: "timed out after 5000 ms" }, "retry-scheduled", 5_000]],
    );
    assert.equal(runner.freeSlots, 4, "the aborted handler ended, so its slot is free");
    await runner.close(0);
  });

  test("cancel(taskId) aborts that task's handler (CancelTask) and records the attempt as cancelled; others run on", async () => {
    const clock = new FakeClock();
    const store = new FakeStore(clock, 3);
    const aborted: string[] = [];
    const runner = newRunner(
      store,
      (input, { signal }) =>
        new Promise<void>((_resolve, reject) => {
          signal.addEventListener("abort", () => {
            aborted.push(input.taskId);
            reject(signal.reason);
          });
        }),
      clock,
      {},
    );
    runner.start(task("doomed", 1));
    runner.start(task("other", 1));
    runner.cancel("not-here");
    runner.cancel("doomed");
    await settle();
    assert.deepEqual(aborted, ["doomed"]);
    assert.deepEqual(
      store.finished.map((f) => [f.taskId, f.result]),
      [["doomed", { ok: false, error: "cancelled (CancelTask)" }]],
    );
    assert.equal(runner.freeSlots, 3, "the other task still runs");
    runner.cancel("other");
    await settle();
    assert.equal(runner.freeSlots, 4);
    await runner.close(0);
  });

  test("an attempt that finishes in time is not failed by its timeout later", async () => {
    const clock = new FakeClock();
    const store = new FakeStore(clock);
    let end: () => void = () => {};
    const runner = newRunner(store, () => new Promise<void>((resolve) => (end = resolve)), clock, {
      attemptTimeoutMs: 5_000,
    });
    runner.start(task("quick", 1));
    clock.advance(4_000);
    end();
    await settle();
    clock.advance(10_000);
    await settle();
    assert.deepEqual(
      store.finished.map((f) => [f.result, f.outcome]),
      [[{ ok: true }, "succeeded"]],
    );
    await runner.close(0);
  });
});
