import type { Config } from "../config.js";
import type { Clock } from "../core/clock.js";
import { createKeys } from "./keys.js";
import type { RedisClient } from "./connection.js";
import { RateWindows } from "./rate-windows.js";
import { RedisStore, type RedisStoreOptions } from "./redis-store.js";

const DAY_SECONDS = 86_400;
const DEAD_LETTER_CAP = 10_000;

export interface RedisStoreSettings {
  /** Paces admit's wait for a lost reply's outcome; the system clock by default. */
  readonly clock?: Clock;
  /** Told of every change that WAIT left short of its replicas (see RedisStoreOptions). */
  readonly onShortOfReplicas?: RedisStoreOptions["onShortOfReplicas"];
}

/**
 * The task store over this Redis, as `tollgate serve` configures it: its keys
 * (partitioned),
 * the policy's windows, the retention of records and idempotency keys, and
 * the replicas each change waits for.
 * The connection stays the caller's; close() the store before closing it.
 */
export function createRedisStore(
  redis: RedisClient,
  config: Pick<Config, "ratePolicy" | "maxBacklog" | "leaseMs" | "maxAttempts"> &
    Partial<Pick<Config, "replicaAcks" | "replicaAckTimeoutMs" | "partitions">>,
  settings: RedisStoreSettings = {},
): RedisStore {
  // One layout on standalone, Sentinel and Cluster alike (see keys.ts).
  const keys = createKeys(undefined, config.partitions);
  return new RedisStore(redis, keys, new RateWindows(redis, config.ratePolicy, keys), {
    maxBacklog: config.maxBacklog,
    leaseMs: config.leaseMs,
    maxAttempts: config.maxAttempts,
    deadLetterCap: DEAD_LETTER_CAP,
    idempotencyTtlSeconds: DAY_SECONDS,
    retentionSeconds: DAY_SECONDS,
    clock: settings.clock,
    replicaAcks: config.replicaAcks ?? 0,
    replicaAckTimeoutMs: config.replicaAckTimeoutMs ?? 1_000,
    onShortOfReplicas: settings.onShortOfReplicas,
  });
}
