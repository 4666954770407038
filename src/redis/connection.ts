import { Cluster, Redis, type ClusterOptions, type RedisOptions } from "ioredis";
import type { Logger } from "../logger.js";
import { parseRedisUrl, redactUrl, type RedisKind, type RedisTarget } from "./redis-url.js";

export { redactUrl };

/** How long a command may go unanswered before it fails (a hung or paused Redis). */
const DEFAULT_COMMAND_TIMEOUT_MS = 2_000;
const CONNECT_TIMEOUT_MS = 2_000;
/**
 * How long the first connect may take in all. A plain client fails on its
 * own (refused, or its connect timeout), but Sentinel and Cluster clients
 * keep retrying (no sentinel knows the master name, no seed node answers),
 * and a start should stop with a message instead of hanging.
 */
const FIRST_CONNECT_DEADLINE_MS = 10_000;

/**
 * The client the store talks through: one server (standalone, or the master
 * Sentinel names) or a Redis Cluster. Both speak the same commands; a Cluster
 * routes each to the master of its key's slot.
 */
export type RedisClient = Redis | Cluster;

export interface RedisConnectionOptions {
  /** Fail a command not answered in this long (a hung or paused Redis). */
  readonly commandTimeoutMs?: number;
  readonly connectionName?: string;
}

/** Reconnect quickly at first, then once a second: an outage should end as soon as Redis is back. */
const backoff = (attempt: number): number => Math.min(50 * 2 ** Math.min(attempt, 5), 1_000);

/**
 * A master that became a replica (Sentinel failed over while this connection
 * stayed open) refuses writes with READONLY: reconnecting asks the sentinels
 * for the new master. The command itself still fails (not resent: a script
 * refused with READONLY did not run, but the caller decides about retries).
 */
const reconnectOnReadonly = (error: Error): boolean => error.message.startsWith("READONLY");

/**
 * An ioredis client that fails fast instead of queueing: while Redis is
 * unreachable every command rejects at once (so Submit answers UNAVAILABLE
 * promptly instead of hanging), and the client keeps reconnecting in the
 * background, so service resumes by itself when Redis is back. The URL's
 * form (see redis-url.ts) picks a plain client, one that asks Sentinel for
 * the master, or a Cluster client.
 */
export async function connectRedis(
  url: string,
  logger: Logger,
  options: RedisConnectionOptions = {},
): Promise<RedisClient> {
  const redis = createClient(parseRedisUrl(url), options);
  let lastError = "";
  redis.on("error", (error: Error) => {
    // ioredis repeats the same error on every reconnect attempt.
    if (error.message !== lastError) logger.warn({ error: error.message }, "redis connection error");
    lastError = error.message;
  });
  redis.on("ready", () => {
    if (lastError !== "") logger.info("redis connection restored");
    lastError = "";
  });
  let deadline: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      redis.connect(),
      new Promise<never>((_resolve, reject) => {
        deadline = setTimeout(
          () =>
            reject(
              new Error(`not connected after ${FIRST_CONNECT_DEADLINE_MS} ms (last error: ${lastError || "none"})`),
            ),
          FIRST_CONNECT_DEADLINE_MS,
        );
      }),
    ]);
  } catch (error) {
    redis.disconnect();
    throw new Error(`cannot reach Redis at ${redactUrl(url)}: ${(error as Error).message}`);
  } finally {
    clearTimeout(deadline);
  }
  return redis;
}

function createClient(target: RedisTarget, options: RedisConnectionOptions): RedisClient {
  const common: RedisOptions = {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: CONNECT_TIMEOUT_MS,
    commandTimeout: options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
    connectionName: options.connectionName ?? "tollgate",
    retryStrategy: backoff,
    // The commands of one event-loop turn go out in one write: a third less
    // Redis CPU per Submit, a fifth less of the workers' (docs/performance.md).
    // Not on a Cluster, where ioredis batches by the slot of a command's first
    // argument, which for EVALSHA is the script's SHA, not a key.
    enableAutoPipelining: true,
  };
  switch (target.kind) {
    case "standalone":
      return new Redis(target.url, common);
    case "sentinel":
      return new Redis({
        ...common,
        sentinels: target.sentinels.map(({ host, port }) => ({ host, port })),
        name: target.masterName,
        role: "master",
        username: target.auth.username,
        password: target.auth.password,
        sentinelUsername: target.sentinelAuth.username,
        sentinelPassword: target.sentinelAuth.password,
        sentinelRetryStrategy: backoff,
        sentinelCommandTimeout: CONNECT_TIMEOUT_MS,
        // Listen for +switch-master, so a failover is followed at once
        // rather than when the old master's connection finally drops.
        failoverDetector: true,
        reconnectOnError: reconnectOnReadonly,
      });
    case "cluster":
      return new Cluster(
        target.nodes.map(({ host, port }) => ({ host, port })),
        {
          lazyConnect: true,
          enableOfflineQueue: false,
          enableReadyCheck: true,
          clusterRetryStrategy: backoff,
          slotsRefreshTimeout: CONNECT_TIMEOUT_MS,
          // CLUSTERDOWN, TRYAGAIN and MOVED are retried a few times, 100 ms
          // apart (a failover moving a slot takes that), then the command
          // fails ("Too many Cluster redirections") as UNAVAILABLE.
          maxRedirections: 6,
          retryDelayOnClusterDown: 100,
          retryDelayOnTryAgain: 100,
          // A command in flight when its node's connection closed may have
          // run: never resend it blindly (admit would store a task twice).
          retryDelayOnFailover: 0,
          redisOptions: {
            connectTimeout: common.connectTimeout,
            commandTimeout: common.commandTimeout,
            connectionName: common.connectionName,
            maxRetriesPerRequest: 0,
            username: target.auth.username,
            password: target.auth.password,
            tls: target.tls ? {} : undefined,
          },
        } satisfies ClusterOptions,
      );
  }
}

/** Which kind of deployment this client talks to. */
export function kindOf(redis: RedisClient): RedisKind {
  if (redis instanceof Cluster) return "cluster";
  // (options may be missing on a test double.)
  return redis.options?.sentinels ? "sentinel" : "standalone";
}

/**
 * A second connection like `redis` (same servers, auth and fail-fast
 * options), not connected yet: for pub/sub, which takes a connection over.
 * A Cluster's copy does sharded pub/sub (SSUBSCRIBE): ioredis keeps one
 * subscriber connection per master (named `ioredis-cluster(ssubscriber):` and
 * `connectionName`), sends each SSUBSCRIBE to the master of the channel's
 * slot, and moves the subscriptions when the slots move (a failover).
 */
export function duplicateClient(redis: RedisClient, connectionName: string): RedisClient {
  if (redis instanceof Cluster) {
    return redis.duplicate([], {
      lazyConnect: true,
      shardedSubscribers: true,
      redisOptions: { ...redis.options.redisOptions, connectionName },
    });
  }
  // A subscriber's commands are its (un)subscriptions: nothing to batch.
  return redis.duplicate({ connectionName, lazyConnect: true, enableAutoPipelining: false });
}

/** The command timeout this client was made with. */
export function commandTimeoutOf(redis: RedisClient): number {
  const options = redis instanceof Cluster ? redis.options.redisOptions : redis.options;
  return options?.commandTimeout ?? DEFAULT_COMMAND_TIMEOUT_MS;
}

/**
 * The servers that hold data, each as a plain connection's worth of
 * commands: a Cluster's masters, or the one server otherwise. For checks that
 * must ask every master (version, maxmemory-policy).
 */
export function mastersOf(redis: RedisClient): readonly Redis[] {
  return redis instanceof Cluster ? redis.nodes("master") : [redis];
}
