/**
 * The window rule, once: rate-limiter-flexible's fixed windows, as the Lua
 * scripts apply them in Redis (src/redis/lua/includes/window.lua). A window
 * opens at its first start and closes `durationMs` later; it counts the starts
 * in it. It is full when its count is at the limit, and a full window holds
 * every start until it closes. The start schedule (estimates) and the tests'
 * replay of logged starts both step windows with these functions.
 */
export interface FixedWindow {
  /** Starts counted in the open window; 0 when none is open. */
  count: number;
  /** The moment (ms) the open window closes; NaN when none is open. */
  resetAt: number;
}

/** A window with `count` starts that closes at `resetAt` (null: none open). */
export function fixedWindow(count = 0, resetAt: number | null = null): FixedWindow {
  return { count, resetAt: resetAt ?? Number.NaN };
}

/** Closes the window if it has reached its reset by `t`. */
export function closeIfReset(window: FixedWindow, t: number): void {
  if (t >= window.resetAt) {
    window.count = 0;
    window.resetAt = Number.NaN;
  }
}

/**
 * The earliest moment from `t` at which the window, as it stands, has room
 * for a start of `units`: `t` when it has, its reset when not. An empty
 * window always has room (a cost above the limit fills it; window.lua says
 * the same). (A full window with no reset cannot block; Redis never holds one.)
 */
export function roomFrom(window: FixedWindow, limit: number, t: number, units = 1): number {
  const full = window.count > 0 && window.count + units > limit;
  return full && !Number.isNaN(window.resetAt) ? Math.max(t, window.resetAt) : t;
}

/** Counts `units` starts at `t`: a window closed by then opens at `t`. */
export function useWindow(window: FixedWindow, durationMs: number, t: number, units = 1): void {
  closeIfReset(window, t);
  if (Number.isNaN(window.resetAt)) window.resetAt = t + durationMs;
  window.count += units;
}
