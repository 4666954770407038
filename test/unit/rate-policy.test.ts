// Rate policy parsing: parseRatePolicy accepts "N/duration"
// lists and refuses everything else with a message, sub-second windows
// included. No I/O.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { formatRatePolicy, parseRatePolicy } from "../../src/core/rate-policy.js";

describe("parseRatePolicy accepts", () => {
  const good: [text: string, windows: [limit: number, durationMs: number][]][] = [
    [
      "1/1s,20/1m",
      [
        [1, 1_000],
        [20, 60_000],
      ],
    ],
    ["1/1s", [[1, 1_000]]],
    ["5/s", [[5, 1_000]]],
    ["10/90s", [[10, 90_000]]],
    ["3/2h", [[3, 7_200_000]]],
    ["1000/1d", [[1000, 86_400_000]]],
    [
      " 1/1s , 20/1m ",
      [
        [1, 1_000],
        [20, 60_000],
      ],
    ],
    [
      "1/1s,20/1m,",
      [
        [1, 1_000],
        [20, 60_000],
      ],
    ],
    [
      "100/1m,1/1s",
      [
        [100, 60_000],
        [1, 1_000],
      ],
    ],
    ["1/366d", [[1, 366 * 86_400_000]]],
  ];
  for (const [text, windows] of good) {
    test(JSON.stringify(text), () => {
      assert.deepEqual(
        parseRatePolicy(text),
        windows.map(([limit, durationMs]) => ({ limit, durationMs })),
      );
    });
  }

  test("a parsed policy is read-only and formats back", () => {
    const policy = parseRatePolicy("1/1s,20/1m,500/1h");
    assert.ok(Object.isFrozen(policy) && policy.every((window) => Object.isFrozen(window)));
    assert.equal(formatRatePolicy(policy), "1/1s,20/1m,500/1h");
  });
});

describe("parseRatePolicy refuses", () => {
  const bad: [text: string, why: string][] = [
    ["", "empty"],
    [" , ", "only separators"],
    ["fast", "not a window"],
    ["20", "no duration"],
    ["/1m", "no limit"],
    ["0/1s", "zero limit"],
    ["-1/1s", "negative limit"],
    ["1.5/1s", "fractional limit"],
    ["1/1", "no unit"],
    ["1/1w", "unknown unit"],
    ["1/0s", "zero duration"],
    ["1/500ms", "sub-second (milliseconds)"],
    ["1/0.5s", "sub-second (fraction)"],
    ["1/1.5s", "fractional seconds"],
    ["1/367d", "longer than 366 days"],
    ["1/1s,2/1s", "two windows of the same duration"],
    ["1/60s,5/1m", "the same duration spelt two ways"],
    ["1/1s;20/1m", "wrong separator"],
    ["1 / 1s", "spaces inside a window"],
    ["99999999999/1s", "limit too large"],
  ];
  for (const [text, why] of bad) {
    test(`${JSON.stringify(text)} (${why})`, () => {
      assert.throws(
        () => parseRatePolicy(text),
        (error: unknown) => error instanceof Error && error.message.length > 0,
      );
    });
  }

  test("the message quotes the offending window", () => {
    assert.throws(() => parseRatePolicy("1/1s,2/500ms"), /2\/500ms/);
  });
});
