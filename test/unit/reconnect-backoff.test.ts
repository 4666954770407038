// A worker's reconnect waits (src/client/reconnect-backoff.ts): 100 ms
// doubling to 5 s, each drawn between half and all of that. Pure.
import assert from "node:assert/strict";
import { test } from "node:test";
import { reconnectDelayMs } from "../../src/client/reconnect-backoff.js";

test("the ceiling doubles from 100 ms and stops at 5 s", () => {
  const ceilings = Array.from({ length: 10 }, (_, index) => reconnectDelayMs(index + 1, () => 1));
  assert.deepEqual(ceilings, [100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000, 5_000, 5_000]);
  assert.equal(
    reconnectDelayMs(10_000, () => 1),
    5_000,
    "no overflow after many failures",
  );
});

test("each wait is drawn between half the ceiling and all of it", () => {
  assert.equal(
    reconnectDelayMs(1, () => 0),
    50,
  );
  assert.equal(
    reconnectDelayMs(3, () => 0.5),
    300,
  );
  assert.equal(
    reconnectDelayMs(20, () => 0),
    2_500,
  );
  for (let i = 0; i < 100; i++) {
    const delay = reconnectDelayMs(4);
    assert.ok(delay >= 400 && delay <= 800, `${delay} within 400 to 800 ms`);
  }
});

test("an attempt below 1 counts as the first", () => {
  assert.equal(
    reconnectDelayMs(0, () => 1),
    100,
  );
});
