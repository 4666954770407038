// Restart delays for things that keep dying: the cluster's workers (first
// replacement at once, then 250 ms doubling to 30 s) and the embedded
// redis-server (250 ms doubling to 30 s), each starting over after a run of
// 10 s. Pure functions of the run lengths they are given.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { WORKER_RESTART, WorkerRestartBackoff } from "../../src/cluster/restart-backoff.js";
import { EMBEDDED_RESTART, RestartBackoff } from "../../src/redis/embedded-redis.js";

describe("WorkerRestartBackoff", () => {
  test("the first replacement is immediate; while it keeps dying, 250 ms doubling to 30 s", () => {
    const backoff = new WorkerRestartBackoff();
    const delays = Array.from({ length: 11 }, () => backoff.next(100));
    assert.deepEqual(delays, [0, 250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
    assert.equal(backoff.crashesInARow, 11);
  });

  test("a run of 10 s is not a crash: it is replaced at once and the count starts over", () => {
    const backoff = new WorkerRestartBackoff();
    for (let i = 0; i < 5; i++) backoff.next(9_999);
    assert.equal(backoff.next(WORKER_RESTART.stableAfterMs), 0, "a stable run");
    assert.equal(backoff.crashesInARow, 0);
    assert.deepEqual(
      [backoff.next(0), backoff.next(0), backoff.next(0)],
      [0, 250, 500],
      "the same sequence as at first",
    );
  });

  test("a crash only just short of the stable mark still counts", () => {
    const backoff = new WorkerRestartBackoff();
    assert.deepEqual([backoff.next(9_999), backoff.next(9_999)], [0, 250]);
  });
});

describe("RestartBackoff (embedded redis-server)", () => {
  test("250 ms doubling to 30 s while it keeps dying, from 250 ms again after a stable run", () => {
    const backoff = new RestartBackoff(EMBEDDED_RESTART);
    const delays = Array.from({ length: 10 }, () => backoff.next(100));
    assert.deepEqual(delays, [250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
    assert.equal(backoff.next(EMBEDDED_RESTART.stableAfterMs), 250, "a run of 10 s resets it");
    assert.equal(backoff.next(0), 500, "a failed start right after counts as dying again");
  });
});
