import type { Redis } from "ioredis";
import { mastersOf, type RedisClient } from "./connection.js";
import { createKeys, type Keys } from "./keys.js";
import { ConfigError } from "../config.js";
import { isRedisUnreachable } from "./errors.js";
import type { Logger } from "../logger.js";

/** The oldest Redis the scripts run on: claim's `ZADD ... LT` came in 6.2. */
export const MIN_REDIS_VERSION = "6.2.0";

/**
 * A Redis Tollgate must not run on. A ConfigError, so `tollgate serve` stops
 * with its message and exit code 2, like any other setting at fault.
 */
class RedisRequirementError extends ConfigError {}

/** `redis_version` from an INFO reply; undefined when it has none. */
export function parseRedisVersion(info: string): string | undefined {
  return /^redis_version:([^\r\n]+)/m.exec(info)?.[1]?.trim();
}

/** Whether `version` ("7.0.15", "6.2.0-rc1") is at least `minimum`; false when it does not parse. */
export function versionAtLeast(version: string, minimum: string): boolean {
  const parse = (text: string): number[] | undefined => {
    const match = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(text);
    return match ? [Number(match[1]), Number(match[2]), Number(match[3] ?? 0)] : undefined;
  };
  const have = parse(version);
  const need = parse(minimum);
  if (!have || !need) return false;
  for (let i = 0; i < 3; i++) {
    if (have[i]! !== need[i]!) return have[i]! > need[i]!;
  }
  return true;
}

/** What is wrong with the Redis an INFO reply describes, version-wise; undefined when nothing is. */
export function versionProblem(info: string): string | undefined {
  const version = parseRedisVersion(info);
  if (version === undefined) return undefined;
  if (versionAtLeast(version, MIN_REDIS_VERSION)) return undefined;
  return (
    `Redis ${version} is too old: Tollgate's scripts need Redis ${MIN_REDIS_VERSION} or newer (ZADD ... LT); ` +
    "upgrade Redis, or point TOLLGATE_REDIS_URL at a newer one"
  );
}

/** What a maxmemory-policy other than noeviction risks. */
function evictionRisk(policy: string): string {
  return (
    `Redis maxmemory-policy is "${policy}": when memory runs short Redis would evict Tollgate's keys, ` +
    "so a queued task's record could vanish (its claim would run an empty payload) and window counters " +
    "could reset (more starts than the policy allows)"
  );
}

/** What is wrong with a maxmemory-policy, and how to fix it; undefined for noeviction, the only safe one. */
export function evictionProblem(policy: string): string | undefined {
  if (policy === "noeviction") return undefined;
  return (
    `${evictionRisk(policy)}. Fix it with \`redis-cli CONFIG SET maxmemory-policy noeviction\` ` +
    "(and `maxmemory-policy noeviction` in redis.conf, so it survives a restart), " +
    "or set TOLLGATE_ALLOW_EVICTION=yes (--allow-eviction yes) to start anyway"
  );
}

export interface RedisRequirementOptions {
  /** Start on an evicting Redis after a warning instead of refusing. */
  readonly allowEviction: boolean;
  /** Replicas each change waits for: fewer connected is warned about. */
  readonly replicaAcks?: number;
  /** The partition count this deployment uses: data written with another is refused. */
  readonly partitions?: number;
}

/**
 * Checks, at start, that Redis can run the scripts and will not evict their
 * keys: throws RedisRequirementError (the message says what to change) for
 * a Redis older than MIN_REDIS_VERSION, and for a maxmemory-policy other
 * than noeviction unless allowed. Where the check itself is impossible
 * (INFO or CONFIG renamed or denied, as on some managed Redis) it warns and
 * lets the start go on: refusing there would refuse every such host. On a
 * Cluster every master is checked (a slot, so Tollgate's data, may move to
 * any of them); behind Sentinel, the master the sentinels name.
 */
export async function checkRedisRequirements(
  redis: RedisClient,
  options: RedisRequirementOptions,
  logger: Logger,
): Promise<void> {
  const masters = mastersOf(redis);
  for (const master of masters) {
    const where = masters.length > 1 || master !== redis ? `${master.options.host}:${master.options.port}: ` : "";
    try {
      await checkServer(master, options, logger.child({ redisNode: `${master.options.host}:${master.options.port}` }));
    } catch (error) {
      if (error instanceof RedisRequirementError) throw new RedisRequirementError(`${where}${error.message}`);
      throw error;
    }
  }
  if (options.partitions !== undefined) await checkKeyLayout(redis, createKeys(undefined, options.partitions));
}

/**
 * The partition count is fixed for the life of the data: a user's keys and
 * task ids name its partition, so another count would strand every queued
 * task. The first start records the count (SET NX); a later start with
 * another count is refused, as is data of the layout before partitions.
 */
async function checkKeyLayout(redis: RedisClient, keys: Keys): Promise<void> {
  // One command per key (on a Cluster they are in different slots), all sent at once.
  const found = await Promise.all(keys.unpartitioned.map((key) => redis.exists(key)));
  const old = keys.unpartitioned.find((_, i) => found[i]! > 0);
  if (old !== undefined) {
    throw new RedisRequirementError(
      `this Redis holds Tollgate data of the layout before partitions (${old}): drain it with the version that wrote it, ` +
        "or delete Tollgate's keys, before starting this version",
    );
  }
  const wanted = String(keys.partitions);
  await redis.set(keys.layout, wanted, "NX");
  const recorded = await redis.get(keys.layout);
  if (recorded !== wanted) {
    throw new RedisRequirementError(
      `this Redis holds Tollgate data written with TOLLGATE_PARTITIONS=${recorded ?? "?"}, not ${wanted}: ` +
        `the count is fixed for the life of the data; start with TOLLGATE_PARTITIONS=${recorded ?? "?"}`,
    );
  }
}

async function checkServer(redis: Redis, options: RedisRequirementOptions, logger: Logger): Promise<void> {
  if ((options.replicaAcks ?? 0) > 0) await checkReplicas(redis, options.replicaAcks ?? 0, logger);
  // Both read at once (one round trip at start, not two), judged in order.
  const [info, reply] = await Promise.all([
    readOrUndefined(() => redis.info("server"), "INFO server", "Redis' version", logger),
    readOrUndefined(
      () => redis.config("GET", "maxmemory-policy"),
      "CONFIG GET maxmemory-policy",
      "that maxmemory-policy is noeviction (make sure it is: evicted keys lose tasks)",
      logger,
    ),
  ]);
  if (info !== undefined) {
    const problem = versionProblem(info);
    if (problem !== undefined) throw new RedisRequirementError(problem);
    if (parseRedisVersion(info) === undefined) {
      logger.warn(
        { minimum: MIN_REDIS_VERSION },
        "INFO server names no redis_version; cannot check that Redis is new enough",
      );
    }
  }

  if (reply === undefined) return;
  const policy = Array.isArray(reply) && typeof reply[1] === "string" ? reply[1] : undefined;
  if (policy === undefined) {
    logger.warn(
      { reply },
      "CONFIG GET maxmemory-policy answered nothing; make sure it is noeviction, or evicted keys can lose tasks",
    );
    return;
  }
  const problem = evictionProblem(policy);
  if (problem === undefined) return;
  if (!options.allowEviction) throw new RedisRequirementError(problem);
  logger.warn(
    { maxmemoryPolicy: policy },
    `${evictionRisk(policy)}; starting anyway because TOLLGATE_ALLOW_EVICTION is yes`,
  );
}

/**
 * Warns when fewer replicas are connected than each change waits for: Submit
 * would answer UNAVAILABLE (not confirmed) until they are. Not refused:
 * replicas may be on their way, and a later outage looks the same.
 */
async function checkReplicas(redis: Redis, required: number, logger: Logger): Promise<void> {
  const info = await readOrUndefined(
    () => redis.info("replication"),
    "INFO replication",
    "how many replicas are connected",
    logger,
  );
  const connected = info === undefined ? undefined : /^connected_slaves:(\d+)/m.exec(info)?.[1];
  if (connected !== undefined && Number(connected) < required) {
    logger.warn(
      { connectedReplicas: Number(connected), replicaAcks: required },
      "fewer replicas are connected than TOLLGATE_REPLICA_ACKS requires: Submit answers UNAVAILABLE (not confirmed) until enough are",
    );
  }
}

/**
 * Runs a check's command; a Redis that cannot be reached fails the start
 * (the caller reports that), any refusal of the command itself only warns.
 */
async function readOrUndefined<T>(
  command: () => Promise<T>,
  what: string,
  unchecked: string,
  logger: Logger,
): Promise<T | undefined> {
  try {
    return await command();
  } catch (error) {
    if (isRedisUnreachable(error)) throw error;
    logger.warn(
      { error: (error as Error).message },
      `${what} was refused (renamed or disabled?), so Tollgate cannot check ${unchecked}; starting anyway`,
    );
    return undefined;
  }
}
