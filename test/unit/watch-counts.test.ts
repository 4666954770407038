// WatchQueue's counts since its stream began stay exact when a user's counters
// expire while idle and start again from zero in a new generation.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { QueueSnapshot } from "../../src/core/store.js";
import { WatchCounts } from "../../src/core/watch-counts.js";

function snapshot(
  now: number,
  generation: number,
  succeeded: number,
  failed = 0,
  dead = 0,
  cancelled = 0,
  requeued = 0,
): QueueSnapshot {
  return {
    now,
    queued: 0,
    running: 0,
    succeeded,
    failed,
    dead,
    cancelled,
    requeued,
    generation,
    dueAt: undefined,
    windows: [],
  };
}

const succeeded = (counts: WatchCounts, s: QueueSnapshot): number => counts.next(s).succeeded;

describe("WatchQueue counts since the stream began", () => {
  test("within one generation: the counters minus the first snapshot's", () => {
    const counts = new WatchCounts();
    assert.deepEqual(counts.next(snapshot(1, 100, 5, 2, 1, 4, 1)), {
      succeeded: 0,
      failed: 0,
      dead: 0,
      cancelled: 0,
      requeued: 0,
      expired: 0,
    });
    assert.deepEqual(counts.next(snapshot(2, 100, 8, 3, 1, 6, 2)), {
      succeeded: 3,
      failed: 1,
      dead: 0,
      cancelled: 2,
      requeued: 1,
      expired: 0,
    });
  });

  test("cancelled and requeued carry across generations as the others do", () => {
    const counts = new WatchCounts();
    counts.next(snapshot(1, 100, 0, 0, 0, 3, 1));
    assert.equal(counts.next(snapshot(2, 100, 0, 0, 0, 5, 1)).cancelled, 2);
    assert.equal(counts.next(snapshot(3, -1, 0)).cancelled, 2, "expired: nothing lost");
    const later = counts.next(snapshot(4, 900, 0, 0, 0, 1, 2));
    assert.deepEqual([later.cancelled, later.requeued], [3, 2]);
  });

  test("the counters expire (no hash) and are made anew: what was seen is kept, the new ones all count", () => {
    const counts = new WatchCounts();
    assert.equal(succeeded(counts, snapshot(1, 100, 5)), 0);
    assert.equal(succeeded(counts, snapshot(2, 100, 7)), 2);
    assert.equal(succeeded(counts, snapshot(3, -1, 0)), 2, "expired: nothing lost");
    assert.equal(succeeded(counts, snapshot(4, 900, 1)), 3, "a new generation counts from zero");
    assert.equal(succeeded(counts, snapshot(5, 900, 4)), 6);
  });

  test("a new generation seen without the gap between", () => {
    const counts = new WatchCounts();
    succeeded(counts, snapshot(1, 100, 5));
    assert.equal(succeeded(counts, snapshot(2, 100, 6)), 1);
    assert.equal(succeeded(counts, snapshot(3, 900, 2)), 3, "6 - 5 from the old, 2 from the new");
  });

  test("a stream that began before the user had counters counts all of the first", () => {
    const counts = new WatchCounts();
    assert.equal(succeeded(counts, snapshot(1, -1, 0)), 0);
    assert.equal(succeeded(counts, snapshot(2, 400, 2)), 2);
  });

  test("an overtaken read of the generation before changes nothing", () => {
    const counts = new WatchCounts();
    succeeded(counts, snapshot(10, 100, 5));
    succeeded(counts, snapshot(20, 100, 6));
    assert.equal(succeeded(counts, snapshot(30, 900, 1)), 2);
    assert.equal(succeeded(counts, snapshot(25, 100, 6)), 2, "older than the last: not a new generation");
    assert.equal(succeeded(counts, snapshot(40, 900, 2)), 3);
  });
});
