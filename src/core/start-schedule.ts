import { closeIfReset, type FixedWindow, fixedWindow, roomFrom, useWindow } from "./fixed-window.js";
import type { RatePolicy } from "./rate-policy.js";

/**
 * One window's state as Redis holds it: how many starts the open window has
 * counted and when it closes (null when no window is open).
 */
export interface WindowCounter {
  readonly count: number;
  readonly resetAt: number | null;
}

/**
 * The earliest moment at which the `n`-th next start (1-based) may happen,
 * given the policy and its windows' state at `now`, if every start happens at
 * the earliest moment allowed. This is exact for fixed windows that open at
 * their first start (rate-limiter-flexible's semantics, fixed-window.ts); it
 * knows nothing of retries or handler time, so it is the policy's bound, not
 * a guess.
 */
export function nthStartTime(
  policy: RatePolicy,
  counters: readonly WindowCounter[],
  now: number,
  n: number,
  /** Units the n-th start uses (its task's cost); the starts before it are taken as one unit each. */
  units = 1,
): number {
  // Submit calls this for every queued task, with n up to the backlog cap:
  // no generator, and all the starts that fit at one moment taken together.
  const windows = windowsFrom(policy, counters);
  let t = now;
  let left = n - 1;
  while (left > 0) {
    t = earliestRoom(policy, windows, t);
    let room = Infinity;
    for (let i = 0; i < windows.length; i++) room = Math.min(room, policy[i]!.limit - windows[i]!.count);
    if (room <= 0) room = 1; // a full window with no reset cannot block (never in Redis)
    const taken = Math.min(room, left);
    left -= taken;
    for (let i = 0; i < windows.length; i++) useWindow(windows[i]!, policy[i]!.durationMs, t, taken);
  }
  return earliestRoom(policy, windows, t, units);
}

/**
 * The earliest moments of the next starts, in order, without end: the plain
 * statement of the schedule, one start at a time. nthStartTime is the fast
 * form Submit uses; tests check the two agree.
 */
export function* startTimes(
  policy: RatePolicy,
  counters: readonly WindowCounter[],
  now: number,
): Generator<number, never, undefined> {
  const windows = windowsFrom(policy, counters);
  let t = now;
  for (;;) {
    t = earliestRoom(policy, windows, t);
    for (const [i, window] of policy.entries()) useWindow(windows[i]!, window.durationMs, t);
    yield t;
  }
}

/** The policy's windows as the counters read from Redis leave them (absent: none open). */
function windowsFrom(policy: RatePolicy, counters: readonly WindowCounter[]): FixedWindow[] {
  return policy.map((_, i) => fixedWindow(counters[i]?.count ?? 0, counters[i]?.resetAt ?? null));
}

/** The earliest moment from `t` at which every window has room for `units`; windows closed by then are closed. */
function earliestRoom(policy: RatePolicy, windows: readonly FixedWindow[], t: number, units = 1): number {
  for (;;) {
    let until = t;
    for (let i = 0; i < windows.length; i++) {
      closeIfReset(windows[i]!, t);
      until = Math.max(until, roomFrom(windows[i]!, policy[i]!.limit, t, units));
    }
    if (until === t) return t;
    t = until;
  }
}
