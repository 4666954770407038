import { SETTINGS, type Config } from "../config.js";
import type { Clock } from "../core/clock.js";
import { createKeys } from "./keys.js";
import type { RedisClient } from "./connection.js";
import { RateWindows } from "./rate-windows.js";
import { RedisStore, type RedisStoreOptions } from "./redis-store.js";

/** The defaults of the settings a caller may leave out (tests and benches). */
const DEFAULTS = {
  retentionSeconds: SETTINGS.retentionSeconds.parse(undefined, {}),
  deadLetterRetentionSeconds: SETTINGS.deadLetterRetentionSeconds.parse(undefined, {}),
  deadLetterCap: SETTINGS.deadLetterCap.parse(undefined, {}),
};

export interface RedisStoreSettings {
  /** Paces admit's wait for a lost reply's outcome; the system clock by default. */
  readonly clock?: Clock;
  /** Told of every change that WAIT left short of its replicas (see RedisStoreOptions). */
  readonly onShortOfReplicas?: RedisStoreOptions["onShortOfReplicas"];
}

/**
 * The task store over this Redis, as `tollgate serve` configures it: its keys
 * (partitioned),
 * the policy's windows, the retention of records, counters, idempotency keys
 * and dead letters (TOLLGATE_RETENTION, TOLLGATE_DEAD_LETTER_RETENTION), and
 * the replicas each change waits for.
 * The connection stays the caller's; close() the store before closing it.
 */
export function createRedisStore(
  redis: RedisClient,
  config: Pick<Config, "ratePolicy" | "maxBacklog" | "leaseMs" | "maxAttempts"> &
    Partial<
      Pick<
        Config,
        | "replicaAcks"
        | "replicaAckTimeoutMs"
        | "partitions"
        | "retentionSeconds"
        | "deadLetterRetentionSeconds"
        | "deadLetterCap"
        | "globalPolicy"
      >
    >,
  settings: RedisStoreSettings = {},
): RedisStore {
  // One layout on standalone, Sentinel and Cluster alike (see keys.ts).
  const keys = createKeys(undefined, config.partitions);
  return new RedisStore(redis, keys, new RateWindows(redis, config.ratePolicy, keys), {
    maxBacklog: config.maxBacklog,
    leaseMs: config.leaseMs,
    maxAttempts: config.maxAttempts,
    deadLetterCap: config.deadLetterCap ?? DEFAULTS.deadLetterCap,
    retentionSeconds: config.retentionSeconds ?? DEFAULTS.retentionSeconds,
    deadLetterRetentionSeconds: config.deadLetterRetentionSeconds ?? DEFAULTS.deadLetterRetentionSeconds,
    clock: settings.clock,
    globalPolicy: config.globalPolicy ?? [],
    replicaAcks: config.replicaAcks ?? 0,
    replicaAckTimeoutMs: config.replicaAckTimeoutMs ?? 1_000,
    onShortOfReplicas: settings.onShortOfReplicas,
  });
}
