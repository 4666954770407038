// The drainer's per-partition plan without I/O: how free slots are shared,
// when each partition is next due a claim, and its back-off.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type ClaimOutcome, PartitionSchedule, share } from "../../src/core/partition-schedule.js";

const MAX_SLEEP_MS = 30_000;
const NOW = 1_000_000;

function outcome(fields: Partial<ClaimOutcome> = {}): ClaimOutcome {
  return {
    claimed: 0,
    dueLeft: false,
    nextDue: undefined,
    nextRetry: undefined,
    nextLeaseExpiry: undefined,
    ...fields,
  };
}

describe("sharing slots", () => {
  test("as evenly as they go, the remainder to the first; one each to the first when scarce", () => {
    assert.deepEqual(share(6, 4), [2, 2, 1, 1]);
    assert.deepEqual(share(8, 4), [2, 2, 2, 2]);
    assert.deepEqual(share(2, 3), [1, 1, 0]);
    assert.deepEqual(share(0, 2), [0, 0]);
    assert.deepEqual(share(5, 0), []);
  });
});

describe("partition schedule", () => {
  test("claims nothing before it is told to look, and then everywhere once", () => {
    const schedule = new PartitionSchedule(3, MAX_SLEEP_MS);
    assert.deepEqual(schedule.takeClaims(NOW, 3), []);
    assert.equal(schedule.nextMoment(NOW), Infinity);
    schedule.lookEverywhere(NOW);
    assert.deepEqual(
      schedule.takeClaims(NOW, 3).map((c) => c.partition),
      [0, 1, 2],
    );
    assert.deepEqual(schedule.takeClaims(NOW, 3), [], "none twice while in flight");
    assert.equal(schedule.nextMoment(NOW), Infinity, "every partition is in flight");
  });

  test("a partition with due users and no slot is not on the timer; its leases are", () => {
    const schedule = new PartitionSchedule(1, MAX_SLEEP_MS);
    schedule.lookEverywhere(NOW);
    schedule.takeClaims(NOW, 0);
    schedule.settled(0, outcome({ dueLeft: true, nextDue: NOW - 5, nextLeaseExpiry: NOW + 700 }), NOW);
    assert.equal(schedule.waitingForSlot(NOW), true);
    assert.equal(schedule.nextMoment(NOW), NOW + 700);
    assert.deepEqual(schedule.takeClaims(NOW, 0), []);
    assert.deepEqual(schedule.takeClaims(NOW, 2), [{ partition: 0, maxClaims: 2 }], "a free slot claims it");
  });

  test("a failed claim backs off from 500 ms, doubling up to 5 s, whatever is due meanwhile", () => {
    const schedule = new PartitionSchedule(1, MAX_SLEEP_MS);
    schedule.lookEverywhere(NOW);
    const backoffs: number[] = [];
    let now = NOW;
    for (let i = 0; i < 6; i++) {
      schedule.takeClaims(now, 1);
      schedule.failed(0, now);
      schedule.wake(0, now);
      backoffs.push(schedule.nextMoment(now) - now);
      assert.deepEqual(schedule.takeClaims(now, 1), [], "not while backing off");
      now = schedule.nextMoment(now);
    }
    assert.deepEqual(backoffs, [500, 1_000, 2_000, 4_000, 5_000, 5_000]);
  });

  test("a wake during a claim is kept over the claim's reply", () => {
    const schedule = new PartitionSchedule(1, MAX_SLEEP_MS);
    schedule.lookEverywhere(NOW);
    schedule.takeClaims(NOW, 1);
    schedule.wake(0, NOW + 100);
    schedule.settled(0, outcome({ nextDue: NOW + 5_000 }), NOW);
    assert.equal(schedule.nextMoment(NOW), NOW + 100);
  });

  test("a wake for a partition the store does not have is ignored", () => {
    const schedule = new PartitionSchedule(2, MAX_SLEEP_MS);
    schedule.wake(7, NOW);
    assert.equal(schedule.nextMoment(NOW), Infinity);
  });

  test("rejects a partition count that is not a positive whole number", () => {
    for (const partitions of [0, -1, 1.5, Number.NaN]) {
      assert.throws(() => new PartitionSchedule(partitions, MAX_SLEEP_MS));
    }
  });
});
