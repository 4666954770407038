import { RateLimiterRedis } from "rate-limiter-flexible";
import type { Keys } from "./keys.js";
import type { RedisClient } from "./connection.js";
import type { RatePolicy } from "../core/rate-policy.js";
import type { WindowCounter } from "../core/start-schedule.js";

/**
 * The policy's windows as rate-limiter-flexible RateLimiterRedis counters.
 * The limiters name the keys and read them; consuming happens in the Lua
 * scripts (admit, claim), which use the same keys with the same semantics, so
 * the counters here and there are one source of truth.
 */
export class RateWindows {
  private readonly limiters: readonly RateLimiterRedis[];

  constructor(redis: RedisClient, policy: RatePolicy, keys: Keys) {
    this.admitArgs = policy.flatMap((window) => [window.limit, window.durationMs / 1000]);
    this.claimArgs = policy.flatMap((window) => [
      keys.windowPrefix(window.durationMs),
      window.limit,
      window.durationMs / 1000,
    ]);
    this.limiters = policy.map(
      (window) =>
        new RateLimiterRedis({
          storeClient: redis,
          keyPrefix: keys.windowPrefix(window.durationMs),
          points: window.limit,
          duration: window.durationMs / 1000,
        }),
    );
  }

  /** The Redis keys of a user's windows, in policy order. */
  keysFor(userId: string): string[] {
    return this.limiters.map((limiter) => limiter.getKey(userId));
  }

  /** admit's per-window arguments: limit, duration in seconds (built once; Submit's hot path). */
  readonly admitArgs: readonly number[];
  /** claim's per-window arguments: key prefix, limit, duration in seconds (claim builds the keys itself). */
  readonly claimArgs: readonly (string | number)[];

  /** Reads a user's windows through rate-limiter-flexible. */
  async read(userId: string, now: number): Promise<WindowCounter[]> {
    const results = await Promise.all(this.limiters.map((limiter) => limiter.get(userId)));
    return results.map((result) =>
      result === null
        ? { count: 0, resetAt: null }
        : { count: result.consumedPoints, resetAt: result.msBeforeNext >= 0 ? now + result.msBeforeNext : null },
    );
  }
}

/** Window counters from a script's flat {count, pttl, ...} reply tail. */
export function countersFromReply(values: readonly unknown[], now: number): WindowCounter[] {
  const counters: WindowCounter[] = [];
  for (let i = 0; i + 1 < values.length; i += 2) {
    const count = Number(values[i]);
    const pttl = Number(values[i + 1]);
    counters.push({ count: pttl === -2 ? 0 : count, resetAt: pttl >= 0 ? now + pttl : null });
  }
  return counters;
}
