// The start schedule: nthStartTime against schedules
// computed by hand. Windows are fixed windows that open at their first start
// and reset `duration` later (rate-limiter-flexible). No I/O, no clock.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseRatePolicy } from "../../src/core/rate-policy.js";
import { nthStartTime, startTimes, type WindowCounter } from "../../src/core/start-schedule.js";

const EMPTY: WindowCounter = { count: 0, resetAt: null };

/** nthStartTime for n = 1..count. */
function schedule(policyText: string, counters: readonly WindowCounter[], now: number, count: number): number[] {
  const policy = parseRatePolicy(policyText);
  return Array.from({ length: count }, (_, i) => nthStartTime(policy, counters, now, i + 1));
}

describe("nthStartTime from empty windows", () => {
  test("1/1s,5/5s: one a second; the 5s window fills at 4000 and resets at 5000", () => {
    // 1s window: opens at each start, resets 1000 later. 5s window: opens at
    // 0 with the first start; starts 1-5 at 0..4000 fill it (count 5 at 4000);
    // it resets at 5000, which is also when the 1s window of the 4000 start
    // resets, so start 6 is at 5000 and opens a new 5s window up to 10000.
    assert.deepEqual(
      schedule("1/1s,5/5s", [EMPTY, EMPTY], 0, 11),
      [0, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000],
    );
  });

  test("1/1s,3/5s: the 5s window holds starts back after the third", () => {
    // 0, 1000, 2000 fill the 5s window (opened at 0, resets 5000);
    // 5000 opens the next one (resets 10000): 5000, 6000, 7000; then 10000...
    assert.deepEqual(schedule("1/1s,3/5s", [EMPTY, EMPTY], 0, 8), [0, 1000, 2000, 5000, 6000, 7000, 10000, 11000]);
  });

  test("the default policy 1/1s,20/1m: 20 starts a second apart, the 21st when the minute resets", () => {
    const times = schedule("1/1s,20/1m", [EMPTY, EMPTY], 1_000_000, 22);
    assert.deepEqual(
      times.slice(0, 20),
      Array.from({ length: 20 }, (_, i) => 1_000_000 + i * 1000),
    );
    assert.equal(times[20], 1_060_000, "the minute window opened at the first start");
    assert.equal(times[21], 1_061_000);
  });

  test("the first start is now, and the schedule does not depend on the policy's order", () => {
    assert.equal(nthStartTime(parseRatePolicy("1/1s,20/1m"), [EMPTY, EMPTY], 1234, 1), 1234);
    assert.deepEqual(schedule("3/5s,1/1s", [EMPTY, EMPTY], 0, 8), [0, 1000, 2000, 5000, 6000, 7000, 10000, 11000]);
  });
});

describe("nthStartTime from partly used windows", () => {
  test("1/1s,5/5s with the second full until +300 and the 5s window at 4 until +2500", () => {
    const now = 10_000;
    // Start 1 waits for the 1s window (10300) and takes the 5s window's last
    // unit. Start 2 waits for both: 1s resets 11300, 5s resets 12500 -> 12500,
    // opening a new 5s window (resets 17500). Then one a second: 13500,
    // 14500, 15500, 16500 fill it (count 5); start 7 at 17500.
    assert.deepEqual(
      schedule(
        "1/1s,5/5s",
        [
          { count: 1, resetAt: now + 300 },
          { count: 4, resetAt: now + 2_500 },
        ],
        now,
        7,
      ),
      [10_300, 12_500, 13_500, 14_500, 15_500, 16_500, 17_500],
    );
  });

  test("room in every window: the first start is now and the open windows keep their reset times", () => {
    const now = 50_000;
    // 1s window closed (count 0); 3/5s window at 1 until 52000: starts at
    // 50000 and 51000 fill it, start 3 at 52000 opens a new one (to 57000):
    // 52000, 53000, 54000 fill that; start 6 at 57000.
    assert.deepEqual(
      schedule("1/1s,3/5s", [EMPTY, { count: 1, resetAt: 52_000 }], now, 6),
      [50_000, 51_000, 52_000, 53_000, 54_000, 57_000],
    );
  });

  test("a window whose reset time has passed counts as closed", () => {
    assert.equal(nthStartTime(parseRatePolicy("1/1s"), [{ count: 1, resetAt: 900 }], 1_000, 1), 1_000);
    assert.equal(nthStartTime(parseRatePolicy("1/1s"), [{ count: 1, resetAt: 1_000 }], 1_000, 2), 2_000);
  });
});

describe("nthStartTime with several windows", () => {
  test("1/1s,3/5s,4/1m from empty windows", () => {
    // 0, 1000, 2000 fill 3/5s (resets 5000). 5000 starts (1m count 4: full
    // until 60000; new 5s window to 10000). At 60000 all three reset:
    // 60000, 61000, 62000 fill the new 5s window (to 65000); 65000 fills the
    // new minute (to 120000); the next start is at 120000.
    assert.deepEqual(
      schedule("1/1s,3/5s,4/1m", [EMPTY, EMPTY, EMPTY], 0, 9),
      [0, 1000, 2000, 5000, 60_000, 61_000, 62_000, 65_000, 120_000],
    );
  });

  test("the tightest window decides, wherever it is in the list", () => {
    const now = 0;
    const counters: WindowCounter[] = [
      { count: 0, resetAt: null },
      { count: 10, resetAt: 30_000 }, // 10/1m full until 30000
      { count: 50, resetAt: 100_000 }, // 100/1h half used
    ];
    // Nothing starts before the minute window resets at 30000. Then two a
    // second (2/1s): 30000 x2 opens the new minute window (to 90000), and
    // 31000, 32000, 33000, 34000 x2 fill it with ten starts. Starts 11 and 12
    // wait for it: 90000. The hour window (60 of 100 by then) never binds.
    const times = schedule("2/1s,10/1m,100/1h", counters, now, 12);
    assert.deepEqual(
      times,
      [30_000, 30_000, 31_000, 31_000, 32_000, 32_000, 33_000, 33_000, 34_000, 34_000, 90_000, 90_000],
    );
  });
});

describe("nthStartTime with a window over its limit", () => {
  test("a count above the limit waits for the reset, then counts from zero", () => {
    // E.g. the policy was lowered from 10/1m to 2/1m while 7 starts were counted.
    assert.deepEqual(
      schedule("2/1m", [{ count: 7, resetAt: 20_000 }], 0, 5),
      [20_000, 20_000, 80_000, 80_000, 140_000],
    );
  });

  test("one window over its limit holds back every window", () => {
    // 1s window closed; the 5s window is at 9 (limit 3) until 4000.
    assert.deepEqual(schedule("1/1s,3/5s", [EMPTY, { count: 9, resetAt: 4_000 }], 0, 4), [4_000, 5_000, 6_000, 9_000]);
  });
});

test("startTimes yields the same schedule nthStartTime answers", () => {
  const policy = parseRatePolicy("1/1s,3/5s,4/1m");
  const generator = startTimes(policy, [EMPTY, EMPTY, EMPTY], 0);
  const fromGenerator = Array.from({ length: 9 }, () => generator.next().value);
  assert.deepEqual(fromGenerator, schedule("1/1s,3/5s,4/1m", [EMPTY, EMPTY, EMPTY], 0, 9));
});

describe("nthStartTime for a start of several units (a task's cost)", () => {
  test("it waits until every window has room for all its units", () => {
    // 5/1s with 3 used until 1000: a cost of 3 waits for the reset, a cost of 2 fits now.
    assert.equal(nthStartTime(parseRatePolicy("5/1s"), [{ count: 3, resetAt: 1_000 }], 0, 1, 3), 1_000);
    assert.equal(nthStartTime(parseRatePolicy("5/1s"), [{ count: 3, resetAt: 1_000 }], 0, 1, 2), 0);
    // Behind 2 one-unit starts (at 0, filling the window), a cost of 3 waits for the reset.
    assert.equal(nthStartTime(parseRatePolicy("5/1s"), [{ count: 2, resetAt: 1_000 }], 0, 3, 3), 1_000);
  });

  test("a cost above the limit starts in an empty window, as window.lua lets it", () => {
    assert.equal(nthStartTime(parseRatePolicy("2/1s"), [{ count: 1, resetAt: 700 }], 0, 1, 5), 700);
  });
});
