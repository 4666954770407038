// Its own module, not the package's index of every store (rate-limiter-redis.d.ts).
import RateLimiterRedis from "rate-limiter-flexible/lib/RateLimiterRedis.js";
import type { Keys } from "./keys.js";
import type { RedisClient } from "./connection.js";
import type { RatePolicy } from "../core/rate-policy.js";
import type { WindowCounter } from "../core/start-schedule.js";

/**
 * Rate windows as rate-limiter-flexible RateLimiterRedis counters. The
 * limiters name the keys and read them; consuming happens in the Lua
 * scripts (admit, claim), which use the same keys with the same semantics, so
 * the counters here and there are one source of truth. A counter is keyed by
 * its user and its duration, not its limit, so a user whose policy changes
 * keeps the counts of its open windows (docs/api.md, Policies as data). A
 * user's counters live in its partition (their prefix carries the
 * partition's hash tag), so there is one limiter per partition and duration,
 * made when first needed.
 */
export class RateWindows {
  private readonly limiters = new Map<string, RateLimiterRedis>();

  constructor(
    private readonly redis: RedisClient,
    /** The host's TOLLGATE_RATE_LIMITS: the default plan until one is stored. */
    readonly policy: RatePolicy,
    private readonly keys: Keys,
  ) {}

  /** The Redis keys of a user's windows of `policy` (the host's by default), in its order. */
  keysFor(userId: string, policy: RatePolicy = this.policy): string[] {
    return policy.map((window) => this.limiter(userId, window.durationMs).getKey(userId));
  }

  /** Reads a user's windows of `policy` (the host's by default) through rate-limiter-flexible. */
  async read(userId: string, now: number, policy: RatePolicy = this.policy): Promise<WindowCounter[]> {
    const results = await Promise.all(policy.map((window) => this.limiter(userId, window.durationMs).get(userId)));
    return results.map((result) =>
      result === null
        ? { count: 0, resetAt: null }
        : { count: result.consumedPoints, resetAt: result.msBeforeNext >= 0 ? now + result.msBeforeNext : null },
    );
  }

  private limiter(userId: string, durationMs: number): RateLimiterRedis {
    const partition = this.keys.forUser(userId);
    const name = `${partition.partition}:${durationMs}`;
    let limiter = this.limiters.get(name);
    if (!limiter) {
      // Only keys are named and counts read here, so the points do not matter.
      limiter = new RateLimiterRedis({
        storeClient: this.redis,
        keyPrefix: partition.windowPrefix(durationMs),
        points: 1,
        duration: durationMs / 1000,
      });
      this.limiters.set(name, limiter);
    }
    return limiter;
  }
}

/** The scripts' arguments for declared window counters: each one's duration in whole seconds. */
export function windowSeconds(policy: RatePolicy): number[] {
  return policy.map((window) => window.durationMs / 1000);
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
