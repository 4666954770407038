/**
 * A rate policy is a list of windows, "N/duration" each, counted per user:
 * at most `limit` task starts in any one window of `durationMs`.
 *
 * Windows are rate-limiter-flexible fixed windows: the first start opens a
 * window that lasts `durationMs`, and its count drops to zero when the window's
 * key expires. rate-limiter-flexible counts in whole seconds, so durations must
 * be whole seconds too: both sides then agree on what a window is.
 */
interface RateWindow {
  readonly limit: number;
  readonly durationMs: number;
}

export type RatePolicy = readonly RateWindow[];

const UNIT_MS: Readonly<Record<string, number>> = {
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const WINDOW_PATTERN = /^(\d+)\/(\d*)([smhd])$/;

/** Parses "1/1s,20/1m". Throws an Error whose message says what is wrong. */
export function parseRatePolicy(text: string): RatePolicy {
  const parts = text
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part !== "");
  if (parts.length === 0) {
    throw new Error(`expected windows like "1/1s,20/1m", got "${text}"`);
  }
  const windows = parts.map((part) => {
    const match = WINDOW_PATTERN.exec(part);
    if (!match) {
      throw new Error(`"${part}" is not a window like "20/1m" (limit/duration, units s, m, h, d)`);
    }
    const [, limitText = "", countText = "", unit = "s"] = match;
    const limit = Number(limitText);
    const durationMs = Number(countText === "" ? "1" : countText) * (UNIT_MS[unit] ?? 1_000);
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > 1_000_000_000) {
      throw new Error(`"${part}": the limit must be a whole number from 1 to 1000000000`);
    }
    if (!Number.isSafeInteger(durationMs) || durationMs < 1_000 || durationMs > 366 * UNIT_MS.d!) {
      throw new Error(`"${part}": the duration must be from 1s to 366d`);
    }
    return { limit, durationMs };
  });
  const seen = new Set<number>();
  for (const window of windows) {
    if (seen.has(window.durationMs)) {
      throw new Error(`two windows have the same duration (${formatDuration(window.durationMs)})`);
    }
    seen.add(window.durationMs);
  }
  return Object.freeze(windows.map((window) => Object.freeze(window)));
}

function formatDuration(ms: number): string {
  for (const unit of ["d", "h", "m"] as const) {
    const unitMs = UNIT_MS[unit]!;
    if (ms % unitMs === 0) return `${ms / unitMs}${unit}`;
  }
  return `${ms / 1_000}s`;
}

export function formatRatePolicy(policy: RatePolicy): string {
  return policy.map((window) => `${window.limit}/${formatDuration(window.durationMs)}`).join(",");
}
