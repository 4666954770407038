// RemoteWorkers on a fake store and a fake clock: each kind's lane claims
// only users parked under its kind; a worker is never sent more than it
// asked for, even when two of its kinds' lanes claim at once; answers become
// outcomes (do_not_retry included); a cancel reaches the worker; a worker
// that goes away hands its tasks back, its attempt not counted.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { TaskInput } from "../../src/core/handlers.js";
import { RemoteWorkers, type WorkerConnection } from "../../src/core/remote-workers.js";
import type { ClaimedTask, ClaimResult } from "../../src/core/store.js";
import { createLogger } from "../../src/logger.js";
import { FakeClock } from "../support/fake-clock.js";
import { FakeStore, type PendingClaim, settle } from "../support/fake-store.js";

const LEASE_MS = 30_000;

function setUp() {
  const clock = new FakeClock(1_000_000);
  const store = new FakeStore();
  const pool = new RemoteWorkers(store, createLogger("silent"), clock, {
    runner: { attemptTimeoutMs: 60_000, leaseMs: LEASE_MS, retryBaseMs: 100, retryMaxMs: 1_000 },
    maxSleepMs: LEASE_MS,
    server: "test:1",
  });
  return { clock, store, pool };
}

/** A worker's end of the link: what it was sent. */
function link() {
  const sent: TaskInput[] = [];
  const cancels: { taskId: string; reason: string }[] = [];
  return {
    sent,
    cancels,
    link: {
      assign: (task: TaskInput) => sent.push(task),
      cancel: (task: { taskId: string }, reason: string) => cancels.push({ taskId: task.taskId, reason }),
    },
  };
}

function task(taskId: string, kind: string, claimId: string): ClaimedTask {
  return { taskId, userId: `u-${taskId}`, kind, payload: Buffer.alloc(0), attempt: 1, dueAt: 0, claimId };
}

/** The claim in flight of the lane for `kind`. */
function claimOf(store: FakeStore, kind: string): PendingClaim {
  const claim = store.inFlightClaims().find((c) => c.claimer?.kinds.includes(kind));
  assert.ok(claim, `a claim in flight for kind ${kind}`);
  return claim;
}

async function answer(claim: PendingClaim, claimed: ClaimedTask[], clock: FakeClock): Promise<void> {
  const result: ClaimResult = {
    partition: 0,
    now: clock.now(),
    claimed,
    nextDue: undefined,
    nextRetry: undefined,
    nextLeaseExpiry: undefined,
  };
  claim.resolve(result);
  await settle();
}

/** Closes the pool, answering the claims its lanes still wait for (close waits for them). */
async function closePool(pool: RemoteWorkers, store: FakeStore, clock: FakeClock): Promise<void> {
  const closed = pool.close(0);
  for (const claim of store.inFlightClaims()) await answer(claim, [], clock);
  await closed;
}

describe("remote workers", () => {
  test("each kind's lane claims only users parked under it, and does not route", async () => {
    const { clock, store, pool } = setUp();
    await pool.connect({ kinds: ["a", "b"], concurrency: 2, name: "w" }, link().link);
    await settle();
    const claimers = store.inFlightClaims().map((claim) => claim.claimer);
    assert.deepEqual(claimers.map((claimer) => claimer?.kinds.join()).sort(), ["a", "b"]);
    assert.ok(claimers.every((claimer) => claimer?.routes === false));
    assert.deepEqual([...pool.kinds()].sort(), ["a", "b"]);
    await closePool(pool, store, clock);
  });

  test("a worker of two kinds that asked for 1 is sent 1 at a time, though both lanes claimed", async () => {
    const { clock, store, pool } = setUp();
    const worker = link();
    const connection = await pool.connect({ kinds: ["a", "b"], concurrency: 1, name: "w" }, worker.link);
    await settle();
    const claimA = claimOf(store, "a");
    const claimB = claimOf(store, "b");
    await answer(claimA, [task("t1", "a", claimA.claimId)], clock);
    await answer(claimB, [task("t2", "b", claimB.claimId)], clock);
    assert.deepEqual(
      worker.sent.map((t) => t.taskId),
      ["t1"],
      "the second waits for room",
    );
    assert.equal(pool.list()[0]!.inFlight, 1);
    assert.ok(connection.answer("t1", 1, { ok: true }));
    await settle();
    assert.deepEqual(
      worker.sent.map((t) => t.taskId),
      ["t1", "t2"],
    );
    assert.ok(connection.answer("t2", 1, { ok: false, error: "bad input", doNotRetry: true }));
    await settle();
    assert.deepEqual(
      store.finished.map(({ task, result }) => [task.taskId, result]),
      [
        ["t1", { ok: true }],
        ["t2", { ok: false, retry: false, error: "bad input" }],
      ],
    );
    assert.equal(connection.answer("t2", 1, { ok: true }), false, "an answer to nothing it holds");
    await closePool(pool, store, clock);
  });

  test("a cancel reaches the worker running the task; a worker that leaves hands its tasks back", async () => {
    const { clock, store, pool } = setUp();
    const worker = link();
    const connection: WorkerConnection = await pool.connect({ kinds: ["a"], concurrency: 2, name: "w" }, worker.link);
    await settle();
    const claim = claimOf(store, "a");
    await answer(claim, [task("t1", "a", claim.claimId), task("t2", "a", claim.claimId)], clock);
    assert.equal(worker.sent.length, 2);
    for (const listener of store.cancelListeners) listener("t1");
    await settle();
    assert.deepEqual(worker.cancels, [{ taskId: "t1", reason: "cancelled (CancelTask)" }]);
    connection.disconnect("gone");
    await settle();
    assert.deepEqual(store.released.map((held) => held.taskId).sort(), ["t2"], "t2 handed back");
    assert.deepEqual(
      store.finished.map(({ task }) => task.taskId),
      ["t1"],
      "t1's cancel recorded as its outcome",
    );
    assert.deepEqual([...pool.kinds()], [], "the lane closed with its last worker");
    assert.deepEqual(pool.list(), []);
    await closePool(pool, store, clock);
  });
});
