// The drainer's planning, on a fake store and a fake clock: when it claims,
// how long it sleeps, what wakes it, how it backs off, and how it closes;
// then the same over several partitions: one timer for all, slots shared
// fairly and never promised twice, and a failing partition holding up no
// other.
import { metrics } from "../../src/metrics.js";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { describe, test } from "node:test";
import { pino } from "pino";
import type { Clock } from "../../src/core/clock.js";
import { Drainer } from "../../src/core/drainer.js";
import type { ClaimResult, ClaimedTask } from "../../src/core/store.js";
import type { TaskRunner } from "../../src/core/task-runner.js";
import { createLogger, type Logger } from "../../src/logger.js";
import { FakeClock } from "../support/fake-clock.js";
import { FakeStore, type PendingClaim, settle } from "../support/fake-store.js";

const MAX_SLEEP_MS = 30_000;

/** The runner as the drainer sees it: free slots (a started task takes one), starts, and "slot-free". */
class FakeRunner extends EventEmitter<{ "slot-free": [] }> {
  freeSlots = 4;
  dueTasksWaiting = false;
  readonly started: ClaimedTask[] = [];

  start(task: ClaimedTask): void {
    this.started.push(task);
    this.freeSlots = Math.max(0, this.freeSlots - 1);
  }

  /** A task ended: its slot is free. */
  free(slots = 1): void {
    this.freeSlots += slots;
    this.emit("slot-free");
  }
}

/** A FakeClock that counts its timers not yet fired nor cancelled. */
class TimerCountingClock extends FakeClock implements Clock {
  pendingTimers = 0;

  override setTimer(callback: () => void, ms: number): () => void {
    let pending = true;
    this.pendingTimers++;
    const done = (): void => {
      if (pending) this.pendingTimers--;
      pending = false;
    };
    const cancel = super.setTimer(() => {
      done();
      callback();
    }, ms);
    return () => {
      done();
      cancel();
    };
  }
}

interface SetUpOptions {
  readonly partitions?: number;
  readonly freeSlots?: number;
  readonly logger?: Logger;
}

function setUp(options: SetUpOptions = {}): {
  clock: TimerCountingClock;
  store: FakeStore;
  runner: FakeRunner;
  drainer: Drainer;
} {
  const clock = new TimerCountingClock(1_000_000);
  const store = new FakeStore({ partitions: options.partitions ?? 1 });
  const runner = new FakeRunner();
  runner.freeSlots = options.freeSlots ?? 4;
  const drainer = new Drainer(store, runner as unknown as TaskRunner, options.logger ?? createLogger("silent"), clock, {
    maxSleepMs: MAX_SLEEP_MS,
  });
  return { clock, store, runner, drainer };
}

/** A claim reply at the clock's now (so the store's clock and the local one agree). */
function reply(clock: FakeClock, fields: Partial<ClaimResult> = {}): ClaimResult {
  return {
    partition: 0,
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

/** The claim in flight for `partition`; fails the test when there is none. */
function inFlight(store: FakeStore, partition: number): PendingClaim {
  const claim = store.inFlightClaims().find((c) => c.partition === partition);
  assert.ok(claim, `a claim in flight for partition ${partition}`);
  return claim;
}

/** Answers `partition`'s claim in flight and lets the drainer plan. */
async function answerIn(
  store: FakeStore,
  clock: FakeClock,
  partition: number,
  fields: Partial<ClaimResult> = {},
): Promise<void> {
  inFlight(store, partition).resolve(reply(clock, { partition, ...fields }));
  await settle();
}

/** The partitions claimed so far, in the order asked, from claim number `from` on. */
function claimedPartitions(store: FakeStore, from = 0): number[] {
  return store.claims.slice(from).map((claim) => claim.partition);
}

/** Slots promised to claims in flight never exceed the runner's free slots. */
function assertNotOverCommitted(store: FakeStore, runner: FakeRunner): void {
  const promised = store.inFlightClaims().reduce((sum, claim) => sum + claim.maxClaims, 0);
  assert.ok(promised <= runner.freeSlots, `${promised} slots promised with ${runner.freeSlots} free`);
}

/** A logger whose warnings the test reads. */
function warningLogger(): { logger: Logger; warnings: string[] } {
  const warnings: string[] = [];
  const logger = pino(
    { level: "warn" },
    { write: (line: string) => warnings.push((JSON.parse(line) as { msg: string }).msg) },
  );
  return { logger, warnings };
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
    store.wake({ partition: 0, dueAt: clock.now() + 250 });
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

  test("tasks a claim dead-lettered (lease lost on the last attempt) are counted in tollgate_tasks_dead_total", async () => {
    const { clock, store, drainer } = setUp();
    const dead = async (): Promise<number> => (await metrics.dead.get()).values[0]?.value ?? 0;
    const before = await dead();
    await drainer.start();
    await settle();
    await answer(store, reply(clock, { deadLettered: 2, nextLeaseExpiry: clock.now() + 20_000 }));
    assert.equal(await dead(), before + 2);
    await shutDown(drainer, store, clock);
  });

  test("a wake-up during an in-flight claim is honoured though the claim's reply cannot know of it", async () => {
    const { clock, store, drainer } = setUp();
    await drainer.start();
    await settle();
    // The claim is in flight; a user becomes due 100 ms from now meanwhile.
    store.wake({ partition: 0, dueAt: clock.now() + 100 });
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

  test("due users left while slots are free are claimed again at once, and Submits may start meanwhile", async () => {
    // Under steady load every reply leaves a few users who came due while it
    // ran. Were Submits told to queue behind those, they would become due
    // users in turn, and every Submit would queue from then on.
    const { clock, store, runner, drainer } = setUp();
    await drainer.start();
    await settle();
    const claimId = store.claims[0]!.claimId;
    await answer(store, reply(clock, { claimed: [task("t1", claimId)], nextDue: clock.now() - 5 }));
    assert.equal(store.claims.length, 2, "claimed again without waiting");
    assert.equal(runner.dueTasksWaiting, false, "a claim with free slots is on its way to them");
    await answer(store, reply(clock));
    assert.equal(runner.dueTasksWaiting, false);
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
    assert.deepEqual(store.claimedByAsked, [{ partition: 0, claimId: lost }], "the lost claim was looked up first");
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
    store.wake({ partition: 0, dueAt: clock.now() });
    store.wake(undefined);
    runner.emit("slot-free");
    await advance(clock, MAX_SLEEP_MS * 2);
    assert.equal(store.claims.length, 1, "nothing claims after close");
    await drainer.close(); // idempotent
  });
});

describe("drainer over partitions", () => {
  test("the start claims every partition, sharing the free slots among them", async () => {
    const { clock, store, runner, drainer } = setUp({ partitions: 4, freeSlots: 6 });
    await drainer.start();
    await settle();
    assert.deepEqual(
      store.claims.map((c) => [c.partition, c.maxClaims]),
      [
        [0, 2],
        [1, 2],
        [2, 1],
        [3, 1],
      ],
    );
    assertNotOverCommitted(store, runner);
    await shutDown(drainer, store, clock);
  });

  test("a wake-up for one partition claims that partition only", async () => {
    const { clock, store, drainer } = setUp({ partitions: 4 });
    await drainer.start();
    await settle();
    for (const partition of [0, 1, 2, 3]) await answerIn(store, clock, partition);
    store.wake({ partition: 2, dueAt: clock.now() + 250 });
    await advance(clock, 249);
    assert.equal(store.claims.length, 4);
    await advance(clock, 1);
    assert.deepEqual(claimedPartitions(store, 4), [2]);
    assert.equal(store.claims[4]!.maxClaims, 4, "the due partition gets the free slots");
    await shutDown(drainer, store, clock);
  });

  test("one timer sleeps until the earliest moment over every partition, then claims that partition", async () => {
    const { clock, store, drainer } = setUp({ partitions: 3 });
    await drainer.start();
    await settle();
    const now = clock.now();
    await answerIn(store, clock, 0, { nextRetry: now + 300 });
    await answerIn(store, clock, 1, { nextDue: now + 200 });
    await answerIn(store, clock, 2, { nextLeaseExpiry: now + 400 });
    assert.equal(clock.pendingTimers, 1, "one timer for every partition");
    await advance(clock, 199);
    assert.equal(store.claims.length, 3);
    await advance(clock, 1);
    assert.deepEqual(claimedPartitions(store, 3), [1], "the due user's partition at 200 ms");
    await answerIn(store, clock, 1);
    await advance(clock, 99);
    assert.equal(store.claims.length, 4);
    await advance(clock, 1);
    assert.deepEqual(claimedPartitions(store, 4), [0], "the retry's partition at 300 ms");
    await answerIn(store, clock, 0);
    await advance(clock, 100);
    assert.deepEqual(claimedPartitions(store, 5), [2], "the lease's partition at 400 ms");
    assert.equal(store.claims[5]!.maxClaims, 0, "nothing due there: recovery only");
    assert.equal(clock.pendingTimers, 1, "still one timer, for the partitions not in flight");
    await shutDown(drainer, store, clock);
  });

  test("claims in flight are never promised more slots than are free", async () => {
    const { clock, store, runner, drainer } = setUp({ partitions: 4, freeSlots: 6 });
    await drainer.start();
    await settle();
    assertNotOverCommitted(store, runner);
    // Partition 0 takes both its slots and has more due; the other claims
    // still hold the remaining four.
    const claimId = inFlight(store, 0).claimId;
    await answerIn(store, clock, 0, { claimed: [task("a", claimId), task("b", claimId)], nextDue: clock.now() });
    assert.equal(runner.freeSlots, 4);
    assert.deepEqual(claimedPartitions(store, 4), [], "no slot is free that is not promised");
    assertNotOverCommitted(store, runner);
    // Partition 3 takes nothing: its slot goes to partition 0.
    await answerIn(store, clock, 3);
    assert.deepEqual(
      store.claims.slice(4).map((c) => [c.partition, c.maxClaims]),
      [[0, 1]],
    );
    assertNotOverCommitted(store, runner);
    await shutDown(drainer, store, clock);
  });

  test("a scarce slot goes to a quiet partition's user due earlier before a busy partition's backlog, whatever their numbers", async () => {
    for (const [busy, quiet] of [
      [0, 1],
      [1, 0],
    ] as const) {
      const { clock, store, runner, drainer } = setUp({ partitions: 2, freeSlots: 0 });
      await drainer.start();
      await settle();
      assert.deepEqual(
        store.claims.map((c) => c.maxClaims),
        [0, 0],
        "no slot: recovery only",
      );
      await answerIn(store, clock, busy, { nextDue: clock.now() - 50 });
      await answerIn(store, clock, quiet, { nextDue: clock.now() - 100 });
      runner.free();
      await settle();
      assert.deepEqual(
        store.claims.slice(2).map((c) => [c.partition, c.maxClaims]),
        [[quiet, 1]],
        `busy ${busy}, quiet ${quiet}: the user due first gets the slot`,
      );
      const claimId = inFlight(store, quiet).claimId;
      await answerIn(store, clock, quiet, { claimed: [task("q", claimId)] });
      runner.free();
      await settle();
      assert.deepEqual(
        store.claims.slice(3).map((c) => [c.partition, c.maxClaims]),
        [[busy, 1]],
        "then the busy partition's",
      );
      await shutDown(drainer, store, clock);
    }
  });

  test("partitions due at the same moment take turns at a scarce slot", async () => {
    const { clock, store, runner, drainer } = setUp({ partitions: 2, freeSlots: 0 });
    await drainer.start();
    await settle();
    const dueAt = clock.now() - 100;
    await answerIn(store, clock, 0, { nextDue: dueAt });
    await answerIn(store, clock, 1, { nextDue: dueAt });
    const winners: number[] = [];
    for (let round = 0; round < 4; round++) {
      runner.free();
      await settle();
      const claim = store.inFlightClaims()[0]!;
      winners.push(claim.partition);
      // It took one and has another user due at the same moment.
      claim.resolve(
        reply(clock, { partition: claim.partition, claimed: [task(`t${round}`, claim.claimId)], nextDue: dueAt }),
      );
      await settle();
    }
    assert.deepEqual(winners, [0, 1, 0, 1]);
    await shutDown(drainer, store, clock);
  });

  test("a partition whose claim hangs, then fails, does not hold up another's claims", async () => {
    const { clock, store, drainer } = setUp({ partitions: 2 });
    await drainer.start();
    await settle();
    // Partition 0's master is failing over: its claim hangs.
    await answerIn(store, clock, 1, { nextDue: clock.now() + 100 });
    await advance(clock, 100);
    assert.deepEqual(claimedPartitions(store, 2), [1], "partition 1 claimed on time meanwhile");
    await answerIn(store, clock, 1);
    inFlight(store, 0).reject(new Error("Command timed out"));
    await settle();
    // Partition 0 backs off for 500 ms; partition 1 is claimed when due within it.
    store.wake({ partition: 1, dueAt: clock.now() + 50 });
    await advance(clock, 50);
    assert.deepEqual(claimedPartitions(store, 3), [1], "not delayed by partition 0's back-off");
    await answerIn(store, clock, 1);
    await advance(clock, 449);
    assert.equal(store.claims.length, 4);
    await advance(clock, 1);
    assert.deepEqual(claimedPartitions(store, 4), [0], "partition 0 again after its back-off");
    await shutDown(drainer, store, clock);
  });

  test("a wake-up for a partition backing off waits for the back-off", async () => {
    const { clock, store, drainer } = setUp();
    await drainer.start();
    await settle();
    store.claims[0]!.reject(new Error("Command timed out"));
    await settle();
    store.wake({ partition: 0, dueAt: clock.now() + 10 });
    await advance(clock, 499);
    assert.equal(store.claims.length, 1);
    await advance(clock, 1);
    assert.equal(store.claims.length, 2);
    await shutDown(drainer, store, clock);
  });

  test("a lost reply is looked up in its own partition before that partition's next claim", async () => {
    const { clock, store, runner, drainer } = setUp({ partitions: 4 });
    await drainer.start();
    await settle();
    const lost = inFlight(store, 3).claimId;
    store.claimedByAnswers.set(lost, [{ taskId: "t-lost", userId: "u", attempt: 1, claimId: lost }]);
    inFlight(store, 3).reject(new Error("Command timed out"));
    for (const partition of [0, 1, 2]) await answerIn(store, clock, partition);
    assert.deepEqual(store.claimedByAsked, []);
    await advance(clock, 500);
    assert.deepEqual(store.claimedByAsked, [{ partition: 3, claimId: lost }]);
    assert.deepEqual(
      store.released.map((t) => t.taskId),
      ["t-lost"],
    );
    assert.equal(runner.started.length, 0);
    assert.deepEqual(claimedPartitions(store, 4), [3]);
    await shutDown(drainer, store, clock);
  });

  test("close waits for every claim in flight and hands back what each took, and what a lost one took", async () => {
    const { clock, store, runner, drainer } = setUp({ partitions: 3, freeSlots: 6 });
    await drainer.start();
    await settle();
    const ids = [0, 1, 2].map((partition) => inFlight(store, partition).claimId);
    store.claimedByAnswers.set(ids[1]!, [{ taskId: "b1", userId: "u", attempt: 1, claimId: ids[1] }]);
    let closed = false;
    const closing = drainer.close().then(() => (closed = true));
    await answerIn(store, clock, 0, { claimed: [task("a1", ids[0]!), task("a2", ids[0]!)] });
    inFlight(store, 1).reject(new Error("Command timed out"));
    await settle();
    assert.equal(closed, false, "partition 2's claim is still in flight");
    await answerIn(store, clock, 2, { claimed: [task("c1", ids[2]!)] });
    await closing;
    assert.deepEqual(store.released.map((t) => t.taskId).sort(), ["a1", "a2", "b1", "c1"]);
    assert.deepEqual(store.claimedByAsked, [{ partition: 1, claimId: ids[1] }]);
    assert.equal(runner.started.length, 0);
    assert.equal(store.claims.length, 3, "nothing claims after close");
  });

  test("a wake-up of undefined claims every partition again, one in flight once it answers", async () => {
    const { clock, store, drainer } = setUp({ partitions: 3 });
    await drainer.start();
    await settle();
    await answerIn(store, clock, 0);
    await answerIn(store, clock, 1);
    store.wake(undefined);
    await settle();
    assert.deepEqual(claimedPartitions(store, 3).sort(), [0, 1], "at once where no claim is in flight");
    await answerIn(store, clock, 0);
    await answerIn(store, clock, 1);
    await answerIn(store, clock, 2);
    assert.deepEqual(claimedPartitions(store, 5), [2], "its reply may predate what was missed");
    await shutDown(drainer, store, clock);
  });

  test("with no slot free, a partition with leases to recover is claimed for them alone, and one with due users waits", async () => {
    const { clock, store, drainer } = setUp({ partitions: 2, freeSlots: 0 });
    await drainer.start();
    await settle();
    await answerIn(store, clock, 0, { nextDue: clock.now() - 5 });
    await answerIn(store, clock, 1, { nextLeaseExpiry: clock.now() + 100 });
    await advance(clock, 100);
    assert.deepEqual(
      store.claims.slice(2).map((c) => [c.partition, c.maxClaims]),
      [[1, 0]],
    );
    await shutDown(drainer, store, clock);
  });

  test("due tasks are waiting while any partition left due users unclaimed", async () => {
    const { clock, store, runner, drainer } = setUp({ partitions: 2, freeSlots: 0 });
    await drainer.start();
    await settle();
    await answerIn(store, clock, 0, { nextDue: clock.now() - 5 });
    assert.equal(runner.dueTasksWaiting, true);
    await answerIn(store, clock, 1);
    assert.equal(runner.dueTasksWaiting, true, "partition 0's users still wait");
    runner.free();
    await settle();
    await answerIn(store, clock, 0, { claimed: [task("t", inFlight(store, 0).claimId)] });
    assert.equal(runner.dueTasksWaiting, false);
    await shutDown(drainer, store, clock);
  });

  test("a run of failures is logged once, however many partitions fail", async () => {
    const { logger, warnings } = warningLogger();
    const { clock, store, drainer } = setUp({ partitions: 3, logger });
    await drainer.start();
    await settle();
    for (const claim of store.inFlightClaims()) claim.reject(new Error("Connection is closed."));
    await settle();
    await advance(clock, 500);
    for (const claim of store.inFlightClaims()) claim.reject(new Error("Connection is closed."));
    await settle();
    assert.deepEqual(warnings, ["drainer cannot claim; retrying"]);
    await advance(clock, 1_000);
    for (const partition of [0, 1, 2]) await answerIn(store, clock, partition);
    store.wake({ partition: 1, dueAt: clock.now() });
    await settle();
    inFlight(store, 1).reject(new Error("Connection is closed."));
    await settle();
    assert.equal(warnings.length, 2, "a new run is logged again");
    await shutDown(drainer, store, clock);
  });
});
