// Worker heartbeats and the primary's watchdog, on a fake clock: the lag a
// heartbeat carries is how late its own timer fired; a worker silent past the
// timeout (after its start-up allowance) is reported once per stall, and
// never before. No processes, no sleeping.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Clock } from "../../src/core/clock.js";
import {
  HeartbeatMonitor,
  HeartbeatSender,
  heartbeatPeriodMs,
  type SilentWorker,
} from "../../src/cluster/heartbeat.js";
import { FakeClock } from "../support/fake-clock.js";

/** A clock whose timers fire `blockedMs` late, as on an event loop blocked that long. */
function blockable(clock: FakeClock): Clock & { blockedMs: number } {
  return {
    blockedMs: 0,
    now: () => clock.now(),
    setTimer(callback, ms) {
      return clock.setTimer(callback, ms + this.blockedMs);
    },
  };
}

describe("HeartbeatSender", () => {
  test("sends one at once, then one every period, each with the drift of its own timer as the lag", () => {
    const clock = new FakeClock(5_000);
    const loop = blockable(clock);
    const sent: { at: number; lagMs: number }[] = [];
    const sender = new HeartbeatSender(loop, 1_000, (lagMs) => sent.push({ at: clock.now(), lagMs }));

    sender.start();
    assert.deepEqual(sent, [{ at: 5_000, lagMs: 0 }], "the first heartbeat goes out at start");
    clock.advance(999);
    assert.equal(sent.length, 1, "nothing before the period ends");
    clock.advance(1);
    assert.deepEqual(sent.at(-1), { at: 6_000, lagMs: 0 }, "on time: no lag");

    loop.blockedMs = 300; // the loop is blocked when the next timer falls due
    clock.advance(1_000); // the beat due at 7000 was scheduled before: on time
    assert.deepEqual(sent.at(-1), { at: 7_000, lagMs: 0 });
    clock.advance(1_000);
    assert.equal(sent.length, 3, "the beat due at 8000 has not fired: the loop is blocked");
    loop.blockedMs = 0; // unblocked from here on
    clock.advance(300);
    assert.deepEqual(sent.at(-1), { at: 8_300, lagMs: 300 }, "it fired 300 ms late and says so");

    clock.advance(1_000);
    assert.deepEqual(
      sent.at(-1),
      { at: 9_300, lagMs: 0 },
      "lag is per beat: the next period starts when the late beat ran",
    );
  });

  test("stop sends no more; start and stop are idempotent", () => {
    const clock = new FakeClock();
    const sent: number[] = [];
    const sender = new HeartbeatSender(clock, 100, (lagMs) => sent.push(lagMs));
    sender.start();
    sender.start();
    clock.advance(250);
    assert.equal(sent.length, 3, "one at start, at 100 and at 200: a second start() adds no timer");
    sender.stop();
    sender.stop();
    clock.advance(1_000);
    assert.equal(sent.length, 3);
  });

  test("the period is a fifth of the timeout, never under 100 ms", () => {
    assert.equal(heartbeatPeriodMs(1_500), 300);
    assert.equal(heartbeatPeriodMs(10_000), 2_000);
    assert.equal(heartbeatPeriodMs(200), 100);
  });
});

describe("HeartbeatMonitor", () => {
  const TIMEOUT_MS = 1_500;
  const ALLOWANCE_MS = 20_000;

  function monitor(clock: FakeClock): {
    monitor: HeartbeatMonitor<string>;
    reports: (SilentWorker<string> & { at: number })[];
  } {
    const reports: (SilentWorker<string> & { at: number })[] = [];
    const watchdog = new HeartbeatMonitor<string>(clock, {
      timeoutMs: TIMEOUT_MS,
      startupAllowanceMs: ALLOWANCE_MS,
      onSilent: (worker) => reports.push({ ...worker, at: clock.now() }),
    });
    watchdog.start();
    return { monitor: watchdog, reports };
  }

  test("checks every quarter of the timeout, never more than ten times a second", () => {
    const clock = new FakeClock();
    const options = { startupAllowanceMs: 0, onSilent: () => {} };
    assert.equal(new HeartbeatMonitor(clock, { ...options, timeoutMs: 1_500 }).checkEveryMs, 375);
    assert.equal(new HeartbeatMonitor(clock, { ...options, timeoutMs: 200 }).checkEveryMs, 100);
  });

  test("a worker that never heartbeats is reported once the start-up allowance and the timeout have passed, and only once", () => {
    const clock = new FakeClock();
    const { monitor: watchdog, reports } = monitor(clock);
    watchdog.watch("w0");
    clock.advance(ALLOWANCE_MS + TIMEOUT_MS);
    assert.equal(reports.length, 0, "not at the allowance plus exactly the timeout");
    clock.advance(watchdog.checkEveryMs);
    assert.equal(reports.length, 1, "reported at the first check past it");
    assert.equal(reports[0]!.key, "w0");
    assert.ok(reports[0]!.silentMs > TIMEOUT_MS && reports[0]!.silentMs <= TIMEOUT_MS + watchdog.checkEveryMs);
    clock.advance(60_000);
    assert.equal(reports.length, 1, "one report per stall");
  });

  test("a worker heartbeating within the timeout is never reported; once silent it is, carrying its last lag", () => {
    const clock = new FakeClock(1_000_000);
    const { monitor: watchdog, reports } = monitor(clock);
    watchdog.watch("w1");
    clock.advance(500);
    for (let i = 0; i < 100; i++) {
      watchdog.heard("w1", i === 99 ? 42 : 0);
      clock.advance(TIMEOUT_MS); // silent for exactly the timeout each time: still fine
    }
    assert.equal(reports.length, 0);
    const lastHeardAt = clock.now() - TIMEOUT_MS;
    clock.advance(watchdog.checkEveryMs);
    assert.equal(reports.length, 1);
    assert.equal(reports[0]!.lastLagMs, 42, "the lag of the last heartbeat");
    assert.equal(reports[0]!.silentMs, reports[0]!.at - lastHeardAt);
  });

  test("any message counts as a sign of life and keeps the last lag; a stall after recovery is reported again", () => {
    const clock = new FakeClock();
    const { monitor: watchdog, reports } = monitor(clock);
    watchdog.watch("w2");
    watchdog.heard("w2", 7);
    clock.advance(1_000);
    watchdog.heard("w2"); // e.g. "serving": no lag in it
    clock.advance(TIMEOUT_MS + watchdog.checkEveryMs);
    assert.equal(reports.length, 1);
    assert.equal(reports[0]!.lastLagMs, 7);
    watchdog.heard("w2", 0);
    clock.advance(TIMEOUT_MS + watchdog.checkEveryMs);
    assert.equal(reports.length, 2, "heard from again, then silent again: a second stall");
  });

  test("a replaced worker gets the allowance again; a forgotten one and a stopped monitor report nothing", () => {
    const clock = new FakeClock();
    const { monitor: watchdog, reports } = monitor(clock);
    watchdog.watch("a");
    watchdog.watch("b");
    watchdog.heard("a", 0);
    watchdog.heard("b", 0);
    clock.advance(1_000);
    watchdog.watch("a"); // restarted: loading again
    watchdog.forget("b"); // exited
    clock.advance(ALLOWANCE_MS);
    assert.equal(reports.length, 0);
    clock.advance(TIMEOUT_MS + watchdog.checkEveryMs);
    assert.deepEqual(
      reports.map((r) => r.key),
      ["a"],
    );
    watchdog.watch("c");
    watchdog.stop();
    clock.advance(10 * (ALLOWANCE_MS + TIMEOUT_MS));
    assert.deepEqual(
      reports.map((r) => r.key),
      ["a"],
    );
  });

  test("a sender and a monitor together: reported one timeout (plus at most one check) after the sender stops", () => {
    const clock = new FakeClock();
    const reports: SilentWorker<number>[] = [];
    const watchdog = new HeartbeatMonitor<number>(clock, {
      timeoutMs: TIMEOUT_MS,
      startupAllowanceMs: ALLOWANCE_MS,
      onSilent: (w) => reports.push(w),
    });
    watchdog.start();
    watchdog.watch(0);
    const sender = new HeartbeatSender(clock, heartbeatPeriodMs(TIMEOUT_MS), (lagMs) => watchdog.heard(0, lagMs));
    sender.start();
    clock.advance(60_000);
    assert.equal(reports.length, 0);
    sender.stop();
    const stoppedAt = clock.now();
    let reportedAt = 0;
    while (reports.length === 0) {
      clock.advance(25);
      reportedAt = clock.now();
    }
    const after = reportedAt - stoppedAt;
    assert.ok(
      after > TIMEOUT_MS - heartbeatPeriodMs(TIMEOUT_MS) && after <= TIMEOUT_MS + watchdog.checkEveryMs,
      `reported ${after} ms after the last beat`,
    );
  });
});
