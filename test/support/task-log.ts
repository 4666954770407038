import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { fixedWindow, roomFrom, useWindow } from "../../src/core/fixed-window.js";
import type { RatePolicy } from "../../src/core/rate-policy.js";
import { pollUntil } from "./expect.js";

export interface LoggedStart {
  readonly userId: string;
  readonly taskId: string;
  readonly attempt: number;
  readonly at: number;
}

/** Lines "<user> <task id> <attempt> <ms>" written by test/fixtures/handlers.ts. */
export async function readFixtureLog(path: string): Promise<LoggedStart[]> {
  const text = await readFile(path, "utf8").catch(() => "");
  return text
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => {
      const [userId = "", taskId = "", attempt = "0", at = "0"] = line.split(" ");
      return { userId, taskId, attempt: Number(attempt), at: Number(at) };
    });
}

/** Start times (ms) from the built-in handler's "<user>-task completed at-<ms>" lines. */
export async function readTaskLog(path: string, userId: string): Promise<number[]> {
  const text = await readFile(path, "utf8").catch(() => "");
  const prefix = `${userId}-task completed at-`;
  return text
    .split("\n")
    .filter((line) => line.startsWith(prefix))
    .map((line) => Number(line.slice(prefix.length)));
}

export interface StartCheck {
  /** ms each start came after the earliest moment the policy allowed it. */
  readonly lateness: number[];
  /** Starts that came before the policy allowed them. */
  readonly violations: number;
}

/**
 * Replays one user's starts against fixed windows that open at their first
 * start (rate-limiter-flexible's semantics, src/core/fixed-window.ts): for each start, the earliest
 * moment the windows opened by the starts before it allowed it (and not
 * before `readyAt`, when the task was submitted), and whether it came earlier
 * than that (a violation, beyond `toleranceMs` of clock granularity).
 */
export function checkStarts(
  policy: RatePolicy,
  starts: readonly number[],
  readyAt: number,
  toleranceMs = 3,
): StartCheck {
  const sorted = [...starts].sort((a, b) => a - b);
  const windows = policy.map(() => fixedWindow());
  const lateness: number[] = [];
  let violations = 0;
  for (const start of sorted) {
    // A full window holds every start until it closes.
    const allowed = Math.max(readyAt, ...policy.map((window, i) => roomFrom(windows[i]!, window.limit, readyAt)));
    if (start < allowed - toleranceMs) violations++;
    lateness.push(start - allowed);
    for (const [i, window] of policy.entries()) useWindow(windows[i]!, window.durationMs, start);
  }
  return { lateness, violations };
}

/** Waits until every one of `taskIds` has a start in the fixture log at `path`. */
export async function waitUntilAllRan(path: string, taskIds: readonly string[], timeoutMs: number): Promise<void> {
  await pollUntil(
    `all ${taskIds.length} acknowledged tasks to run`,
    async () => {
      const ran = new Set((await readFixtureLog(path)).map((s) => s.taskId));
      return taskIds.every((id) => ran.has(id));
    },
    { timeoutMs },
  );
}

/**
 * Checks that a task of the fixture log at `path` ran twice only because a
 * SIGKILL between `killAt` and `killedAt` cut its first run short: at-least-
 * once allows a repeat for a task running at the kill (its `runMs` had not
 * passed, or its outcome was still on its way to Redis: 250 ms of slack for a
 * loaded machine), and for no other.
 */
export async function checkRepeatsOnlyAcrossKill(
  path: string,
  killAt: number,
  killedAt: number,
  runMs: number,
): Promise<void> {
  const seen = new Map<string, number[]>();
  for (const s of await readFixtureLog(path)) seen.set(s.taskId, [...(seen.get(s.taskId) ?? []), s.at]);
  for (const [taskId, times] of seen) {
    if (times.length > 1) {
      assert.ok(times[0]! <= killedAt && times[0]! + runMs > killAt - 250, `${taskId} ran twice without cause`);
    }
  }
}
