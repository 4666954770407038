// The progress hub on a fake store and a fake clock: snapshot reads
// coalesced per queue, heartbeats when nothing changes, a failed first read,
// and the subscription to progress events (shared, and forgotten on failure).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ProgressHub, type SnapshotListener } from "../../src/core/progress-hub.js";
import type { QueueSnapshot } from "../../src/core/store.js";
import { createLogger } from "../../src/logger.js";
import { FakeClock } from "../support/fake-clock.js";
import { Deferred, FakeStore, settle } from "../support/fake-store.js";

const COALESCE_MS = 100;
const HEARTBEAT_MS = 5_000;

function setUp(): { clock: FakeClock; store: FakeStore; hub: ProgressHub } {
  const clock = new FakeClock(1_000_000);
  const store = new FakeStore();
  const hub = new ProgressHub(store, clock, createLogger("silent"), {
    coalesceMs: COALESCE_MS,
    heartbeatMs: HEARTBEAT_MS,
  });
  return { clock, store, hub };
}

function snapshot(queued: number): QueueSnapshot {
  return {
    now: 0,
    queued,
    running: 0,
    succeeded: 0,
    failed: 0,
    dead: 0,
    cancelled: 0,
    requeued: 0,
    generation: 1,
    dueAt: undefined,
    windows: [],
  };
}

/** A listener that records what it gets. */
function recorder(): SnapshotListener & { delivered: number[]; failures: unknown[] } {
  const delivered: number[] = [];
  const failures: unknown[] = [];
  return {
    delivered,
    failures,
    deliver: (s) => delivered.push(s.queued),
    fail: (error) => failures.push(error),
  };
}

/** Answers every snapshot read not answered yet with `queued`. */
async function answerReads(store: FakeStore, queued: number): Promise<void> {
  for (const read of store.snapshots) read.resolve(snapshot(queued));
  await settle();
}

async function advance(clock: FakeClock, ms: number): Promise<void> {
  clock.advance(ms);
  await settle();
}

describe("progress hub", () => {
  test("a new watcher gets a snapshot at once", async () => {
    const { store, hub } = setUp();
    const listener = recorder();
    const stop = await hub.watch("alice", listener);
    assert.deepEqual(
      store.snapshots.map((r) => r.userId),
      ["alice"],
    );
    await answerReads(store, 3);
    assert.deepEqual(listener.delivered, [3]);
    stop();
  });

  test("many changes within coalesceMs cost one read, delivered to every watcher of the queue", async () => {
    const { clock, store, hub } = setUp();
    const first = recorder();
    const second = recorder();
    const stops = [await hub.watch("alice", first), await hub.watch("alice", second)];
    await answerReads(store, 1);
    const readsBefore = store.snapshots.length;

    store.progress("alice"); // the first change reads at once
    await advance(clock, 0);
    assert.equal(store.snapshots.length, readsBefore + 1);
    await answerReads(store, 2);
    for (let i = 0; i < 20; i++) {
      store.progress("alice");
      await advance(clock, 4);
    }
    // 80 ms later: still within the coalescing period of the last read.
    assert.equal(store.snapshots.length, readsBefore + 1, "no read before coalesceMs has passed");
    await advance(clock, COALESCE_MS);
    assert.equal(store.snapshots.length, readsBefore + 2, "one read for twenty changes");
    await answerReads(store, 7);
    // Each watcher's own first snapshot, then the two shared reads.
    assert.deepEqual(first.delivered, [1, 2, 7]);
    assert.deepEqual(second.delivered, [1, 2, 7]);
    assert.equal(store.snapshots.length, readsBefore + 2);
    for (const stop of stops) stop();
  });

  test("a change during a read is read once more after it, not lost", async () => {
    const { clock, store, hub } = setUp();
    const listener = recorder();
    const stop = await hub.watch("alice", listener);
    await answerReads(store, 1);
    store.progress("alice");
    await advance(clock, 0);
    const reads = store.snapshots.length;
    store.progress("alice"); // while that read is in flight
    store.progress("alice");
    await answerReads(store, 2);
    await advance(clock, COALESCE_MS);
    assert.equal(store.snapshots.length, reads + 1, "one more read for the changes during the read");
    await answerReads(store, 3);
    assert.equal(listener.delivered.at(-1), 3);
    stop();
  });

  test("changes of another user's queue do not read this one; the every-queue watch sees all", async () => {
    const { clock, store, hub } = setUp();
    const alice = recorder();
    const all = recorder();
    const stops = [await hub.watch("alice", alice), await hub.watch("", all)];
    await answerReads(store, 0);
    const reads = store.snapshots.length;
    store.progress("bob");
    await advance(clock, 0);
    assert.deepEqual(
      store.snapshots.slice(reads).map((r) => r.userId),
      [""],
    );
    for (const stop of stops) stop();
  });

  test("a heartbeat snapshot every heartbeatMs when nothing changes", async () => {
    const { clock, store, hub } = setUp();
    const listener = recorder();
    const stop = await hub.watch("alice", listener);
    await answerReads(store, 4);
    await advance(clock, HEARTBEAT_MS - 1);
    assert.equal(store.snapshots.length, 1, "no read before the heartbeat");
    await advance(clock, 1);
    assert.equal(store.snapshots.length, 2, "a heartbeat read");
    await answerReads(store, 4);
    await advance(clock, HEARTBEAT_MS);
    assert.equal(store.snapshots.length, 3, "and again");
    await answerReads(store, 4);
    assert.deepEqual(listener.delivered, [4, 4, 4]);
    stop();
    await advance(clock, HEARTBEAT_MS * 3);
    assert.equal(store.snapshots.length, 3, "no heartbeat once nobody watches");
  });

  test("a failed first read ends that listener, not the others of its queue", async () => {
    const { clock, store, hub } = setUp();
    const other = recorder();
    const stopOther = await hub.watch("alice", other);
    await answerReads(store, 1);
    const listener = recorder();
    await hub.watch("alice", listener);
    const outage = new Error("the task store is unreachable");
    store.snapshots.at(-1)!.reject(outage);
    await settle();
    assert.deepEqual(listener.failures, [outage]);
    assert.deepEqual(listener.delivered, []);
    assert.deepEqual(other.failures, []);
    store.progress("alice");
    await advance(clock, 0);
    await answerReads(store, 2);
    assert.deepEqual(other.delivered, [1, 2], "the other watcher goes on");
    stopOther();
  });

  test("a failed read after the first is survived: the next change or heartbeat reads again", async () => {
    const { clock, store, hub } = setUp();
    const listener = recorder();
    const stop = await hub.watch("alice", listener);
    await answerReads(store, 1);
    store.progress("alice");
    await advance(clock, 0);
    store.snapshots.at(-1)!.reject(new Error("blip"));
    await settle();
    assert.deepEqual(listener.failures, []);
    await advance(clock, HEARTBEAT_MS);
    await answerReads(store, 5);
    assert.equal(listener.delivered.at(-1), 5);
    stop();
  });

  test("one subscription for every watcher, dropped when the last leaves", async () => {
    const { store, hub } = setUp();
    const stops = [
      await hub.watch("alice", recorder()),
      await hub.watch("bob", recorder()),
      await hub.watch("alice", recorder()),
    ];
    assert.equal(store.progressSubscribes, 1);
    assert.equal(store.progressListeners.size, 1);
    assert.equal(hub.watchedQueues, 2);
    for (const stop of stops) stop();
    await settle();
    assert.equal(hub.watchedQueues, 0);
    assert.equal(store.progressListeners.size, 0, "unsubscribed");
    await hub.watch("alice", recorder());
    assert.equal(store.progressSubscribes, 2, "subscribed again for a new watcher");
  });

  test("a failed subscribe is forgotten: that watch rejects, leaves nothing, and the next watch subscribes again", async () => {
    const { store, hub } = setUp();
    const failing = new Deferred<void>();
    store.progressSubscribeAnswers.push(failing);
    const outage = new Error("the task store is unreachable");
    const watching = hub.watch("alice", recorder());
    failing.reject(outage);
    await assert.rejects(watching, outage);
    assert.equal(hub.watchedQueues, 0, "the failed watcher left no topic behind");
    assert.equal(store.snapshots.length, 0, "and read nothing");

    const listener = recorder();
    const stop = await hub.watch("alice", listener);
    assert.equal(store.progressSubscribes, 2, "the second watch subscribed afresh");
    await answerReads(store, 2);
    assert.deepEqual(listener.delivered, [2]);
    stop();
  });

  test("close ends every watch with the reason and unsubscribes; later watches are refused", async () => {
    const { store, hub } = setUp();
    const first = recorder();
    const second = recorder();
    await hub.watch("alice", first);
    await hub.watch("", second);
    await answerReads(store, 0);
    const reason = new Error("server shutting down");
    hub.close(reason);
    await settle();
    assert.deepEqual(first.failures, [reason]);
    assert.deepEqual(second.failures, [reason]);
    assert.equal(store.progressListeners.size, 0);
    await assert.rejects(hub.watch("alice", recorder()), /closed/);
    hub.close(reason); // idempotent
  });
});
