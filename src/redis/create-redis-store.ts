import type { Redis } from "ioredis";
import type { Config } from "../config.js";
import type { Clock } from "../core/clock.js";
import { createKeys } from "./keys.js";
import { RateWindows } from "./rate-windows.js";
import { RedisStore } from "./redis-store.js";

const DAY_SECONDS = 86_400;
const DEAD_LETTER_CAP = 10_000;

export interface RedisStoreSettings {
  /** Paces admit's wait for a lost reply's outcome; the system clock by default. */
  readonly clock?: Clock;
}

/**
 * The task store over this Redis, as `tollgate serve` configures it: its keys,
 * the policy's windows, and the retention of records and idempotency keys.
 * The connection stays the caller's; close() the store before closing it.
 */
export function createRedisStore(
  redis: Redis,
  config: Pick<Config, "ratePolicy" | "maxBacklog" | "leaseMs" | "maxAttempts">,
  settings: RedisStoreSettings = {},
): RedisStore {
  const keys = createKeys();
  return new RedisStore(redis, keys, new RateWindows(redis, config.ratePolicy, keys), {
    maxBacklog: config.maxBacklog,
    leaseMs: config.leaseMs,
    maxAttempts: config.maxAttempts,
    deadLetterCap: DEAD_LETTER_CAP,
    idempotencyTtlSeconds: DAY_SECONDS,
    retentionSeconds: DAY_SECONDS,
    clock: settings.clock,
  });
}
