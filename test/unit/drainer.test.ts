// The drainer's planning, on a fake store and a fake clock: when it claims,
// how long it sleeps, what wakes it, how it backs off, and how it closes.
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { describe, test } from "node:test";
import { Drainer } from "../../src/core/drainer.js";
import type { ClaimResult, ClaimedTask } from "../../src/core/store.js";
import type { TaskRunner } from "../../src/core/task-runner.js";
import { createLogger } from "../../src/logger.js";
import { FakeClock } from "../support/fake-clock.js";
import { FakeStore, settle } from "../support/fake-store.js";

const MAX_SLEEP_MS = 30_000;

/** The runner as the drainer sees it: free slots, starts, and "slot-free". */
class FakeRunner extends EventEmitter<{ "slot-free": [] }> {
  freeSlots = 4;
  dueTasksWaiting = false;
  readonly started: ClaimedTask[] = [];

  start(task: ClaimedTask): void {
    this.started.push(task);
  }
}

function setUp(): { clock: FakeClock; store: FakeStore; runner: FakeRunner; drainer: Drainer } {
  const clock = new FakeClock(1_000_000);
  const store = new FakeStore();
  const runner = new FakeRunner();
  const drainer = new Drainer(store, runner as unknown as TaskRunner, createLogger("silent"), clock, {
    maxSleepMs: MAX_SLEEP_MS,
  });
  return { clock, store, runner, drainer };
}

/** A claim reply at the clock's now (so the store's clock and the local one agree). */
function reply(clock: FakeClock, fields: Partial<ClaimResult> = {}): ClaimResult {
  return {
    now: clock.now(),
    claimed: [],
    nextDue: undefined,
    nextRetry: undefined,
    nextLeaseExpiry: undefined,
    ...fields,
  };
}

function task(taskId: string, claimId: string): ClaimedTask {
  return { taskId, userId: "u", kind: "", payload: Buffer.alloc(0), attempt: 1, dueAt: 0, claimId };
}

/** Answers the latest claim and lets the drainer plan. */
async function answer(store: FakeStore, result: ClaimResult): Promise<void> {
  store.claims.at(-1)!.resolve(result);
  await settle();
}

/** Closes the drainer, answering a claim still in flight with nothing claimed. */
async function shutDown(drainer: Drainer, store: FakeStore, clock: FakeClock): Promise<void> {
  const closed = drainer.close();
  for (const claim of store.claims) claim.resolve(reply(clock)); // no-op for those answered
  await closed;
}

/** Advances the clock and lets what its timers started run. */
async function advance(clock: FakeClock, ms: number): Promise<void> {
  clock.advance(ms);
  await settle();
}

describe("drainer planning", () => {
  test("start subscribes to wake-ups and claims at once, as many as there are free slots", async () => {
    const { clock, store, drainer } = setUp();
    await drainer.start();
    await settle();
    assert.equal(store.wakeListeners.size, 1);
    assert.equal(store.claims.length, 1);
    assert.equal(store.claims[0]!.maxClaims, 4);
    await shutDown(drainer, store, clock);
  });

  test("sleeps until the earliest of the next due user, retry and lease expiry", async () => {
    for (const [earliest, fields] of [
      ["due", { nextDue: 500, nextRetry: 700, nextLeaseExpiry: 900 }],
      ["retry", { nextDue: 700, nextRetry: 300, nextLeaseExpiry: 900 }],
      ["lease", { nextDue: 700, nextRetry: 800, nextLeaseExpiry: 200 }],
    ] as const) {
      const { clock, store, drainer } = setUp();
      await drainer.start();
      await settle();
      const now = clock.now();
      const wait = Math.min(fields.nextDue, fields.nextRetry, fields.nextLeaseExpiry);
      await answer(
        store,
        reply(clock, {
          nextDue: now + fields.nextDue,
          nextRetry: now + fields.nextRetry,
          nextLeaseExpiry: now + fields.nextLeaseExpiry,
        }),
      );
      await advance(clock, wait - 1);
      assert.equal(store.claims.length, 1, `${earliest}: no claim before ${wait} ms`);
      await advance(clock, 1);
      assert.equal(store.claims.length, 2, `${earliest}: a claim at ${wait} ms`);
      await shutDown(drainer, store, clock);
    }
  });

  test("with nothing scheduled it sleeps maxSleepMs, and claims nothing meanwhile", async () => {
    const { clock, store, drainer } = setUp();
    await drainer.start();
    await settle();
    await answer(store, reply(clock));
    await advance(clock, MAX_SLEEP_MS - 1);
    assert.equal(store.claims.length, 1);
    await advance(clock, 1);
    assert.equal(store.claims.length, 2);
    await shutDown(drainer, store, clock);
  });

  test("a wake-up brings the next claim forward to the moment it names; undefined means now", async () => {
    const { clock, store, drainer } = setUp();
    await drainer.start();
    await settle();
    await answer(store, reply(clock));
    store.wake(clock.now() + 250);
    await advance(clock, 249);
    assert.equal(store.claims.length, 1);
    await advance(clock, 1);
    assert.equal(store.claims.length, 2, "woken at the due moment");
    await answer(store, reply(clock));
    store.wake(undefined); // wakes may have been missed (a reconnect): look now
    await settle();
    assert.equal(store.claims.length, 3, "looked again at once");
    await shutDown(drainer, store, clock);
  });

  test("a wake-up during an in-flight claim is honoured though the claim's reply cannot know of it", async () => {
    const { clock, store, drainer } = setUp();
    await drainer.start();
    await settle();
    // The claim is in flight; a user becomes due 100 ms from now meanwhile.
    store.wake(clock.now() + 100);
    await settle();
    // The reply was read before that user was queued: nothing due for long.
    await answer(store, reply(clock, { nextLeaseExpiry: clock.now() + 20_000 }));
    await advance(clock, 99);
    assert.equal(store.claims.length, 1);
    await advance(clock, 1);
    assert.equal(store.claims.length, 2, "the wake's moment was kept, not replaced by the reply's plan");
    await shutDown(drainer, store, clock);
  });

  test("claims again at once when more users are due than a step took, and starts what it claimed", async () => {
    const { clock, store, runner, drainer } = setUp();
    await drainer.start();
    await settle();
    const claimId = store.claims[0]!.claimId;
    await answer(store, reply(clock, { claimed: [task("t1", claimId)], nextDue: clock.now() }));
    assert.deepEqual(
      runner.started.map((t) => t.taskId),
      ["t1"],
    );
    assert.equal(store.claims.length, 2, "claimed again without waiting");
    await shutDown(drainer, store, clock);
  });

  test("due users but no free slot: waits for a slot, not for a timer", async () => {
    const { clock, store, runner, drainer } = setUp();
    await drainer.start();
    await settle();
    runner.freeSlots = 0;
    await answer(store, reply(clock, { nextDue: clock.now() - 5 }));
    assert.equal(runner.dueTasksWaiting, true, "Submits are told due tasks wait here");
    await advance(clock, 1_000);
    assert.equal(store.claims.length, 1, "no claim while no slot is free");
    runner.freeSlots = 1;
    runner.emit("slot-free");
    await settle();
    assert.equal(store.claims.length, 2, "a freed slot claims at once");
    assert.equal(store.claims[1]!.maxClaims, 1);
    await answer(store, reply(clock));
    assert.equal(runner.dueTasksWaiting, false);
    runner.emit("slot-free");
    await settle();
    assert.equal(store.claims.length, 2, "a freed slot with nothing waiting claims nothing");
    await shutDown(drainer, store, clock);
  });

  test("due but nothing claimable with a free slot: looks again 10 ms later, not in a spin", async () => {
    const { clock, store, drainer } = setUp();
    await drainer.start();
    await settle();
    await answer(store, reply(clock, { nextDue: clock.now() }));
    assert.equal(store.claims.length, 1);
    await advance(clock, 10);
    assert.equal(store.claims.length, 2);
    await shutDown(drainer, store, clock);
  });

  test("a failed claim backs off, growing, and looks up what the unanswered claim took before the next", async () => {
    const { clock, store, runner, drainer } = setUp();
    await drainer.start();
    await settle();
    const lost = store.claims[0]!.claimId;
    store.claimedByAnswers.set(lost, [{ taskId: "t-lost", userId: "u", attempt: 1, claimId: lost }]);
    store.claims[0]!.reject(new Error("Command timed out"));
    await settle();
    await advance(clock, 499);
    assert.equal(store.claims.length, 1, "no claim before the first back-off (500 ms)");
    await advance(clock, 1);
    assert.equal(store.claims.length, 2);
    assert.deepEqual(store.claimedByAsked, [lost], "the lost claim was looked up first");
    assert.deepEqual(
      store.released.map((t) => t.taskId),
      ["t-lost"],
      "what it took was handed back, not started",
    );
    assert.equal(runner.started.length, 0);

    store.claims[1]!.reject(new Error("Command timed out"));
    await settle();
    await advance(clock, 999);
    assert.equal(store.claims.length, 2, "the second back-off is longer (1 s)");
    await advance(clock, 1);
    assert.equal(store.claims.length, 3);

    // A success resets the back-off.
    await answer(store, reply(clock, { nextDue: clock.now() + 50 }));
    await advance(clock, 50);
    assert.equal(store.claims.length, 4);
    await shutDown(drainer, store, clock);
  });

  test("close waits for the claim in flight and hands back what it took; it stops claiming and unsubscribes", async () => {
    const { clock, store, runner, drainer } = setUp();
    await drainer.start();
    await settle();
    const claimId = store.claims[0]!.claimId;
    let closed = false;
    const closing = drainer.close().then(() => (closed = true));
    await settle();
    assert.equal(closed, false, "close waits for the claim in flight");
    await answer(store, reply(clock, { claimed: [task("t1", claimId), task("t2", claimId)], nextDue: clock.now() }));
    await closing;
    assert.deepEqual(
      store.released.map((t) => t.taskId),
      ["t1", "t2"],
    );
    assert.equal(runner.started.length, 0, "nothing claimed during close starts here");
    assert.equal(store.wakeListeners.size, 0, "unsubscribed");
    store.wake(clock.now());
    runner.emit("slot-free");
    await advance(clock, MAX_SLEEP_MS * 2);
    assert.equal(store.claims.length, 1, "nothing claims after close");
    await drainer.close(); // idempotent
  });
});
