import { RateLimiterRedis } from "rate-limiter-flexible";
import type { Keys } from "./keys.js";
import type { RedisClient } from "./connection.js";
import type { RatePolicy } from "../core/rate-policy.js";
import type { WindowCounter } from "../core/start-schedule.js";

/**
 * The policy's windows as rate-limiter-flexible RateLimiterRedis counters.
 * The limiters name the keys and read them; consuming happens in the Lua
 * scripts (admit, claim), which use the same keys with the same semantics, so
 * the counters here and there are one source of truth. A user's counters
 * live in its partition (their prefix carries the partition's hash tag), so
 * there is one set of limiters per partition, made when first needed.
 */
export class RateWindows {
  private readonly byPartition = new Map<number, readonly RateLimiterRedis[]>();

  constructor(
    private readonly redis: RedisClient,
    private readonly policy: RatePolicy,
    private readonly keys: Keys,
  ) {
    this.scriptArgs = policy.flatMap((window) => [window.limit, window.durationMs / 1000]);
  }

  /** How many windows the policy has. */
  get count(): number {
    return this.policy.length;
  }

  /** The scripts' per-window arguments: limit, duration in seconds (built once; Submit's hot path). */
  readonly scriptArgs: readonly number[];

  /** The Redis keys of a user's windows, in policy order. */
  keysFor(userId: string): string[] {
    return this.limitersFor(userId).map((limiter) => limiter.getKey(userId));
  }

  /** Reads a user's windows through rate-limiter-flexible. */
  async read(userId: string, now: number): Promise<WindowCounter[]> {
    const results = await Promise.all(this.limitersFor(userId).map((limiter) => limiter.get(userId)));
    return results.map((result) =>
      result === null
        ? { count: 0, resetAt: null }
        : { count: result.consumedPoints, resetAt: result.msBeforeNext >= 0 ? now + result.msBeforeNext : null },
    );
  }

  private limitersFor(userId: string): readonly RateLimiterRedis[] {
    const partition = this.keys.forUser(userId);
    let limiters = this.byPartition.get(partition.partition);
    if (!limiters) {
      limiters = this.policy.map(
        (window) =>
          new RateLimiterRedis({
            storeClient: this.redis,
            keyPrefix: partition.windowPrefix(window.durationMs),
            points: window.limit,
            duration: window.durationMs / 1000,
          }),
      );
      this.byPartition.set(partition.partition, limiters);
    }
    return limiters;
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
