import { Redis } from "ioredis";
import type { Logger } from "../logger.js";

/** How long a command may go unanswered before it fails (a hung or paused Redis). */
const DEFAULT_COMMAND_TIMEOUT_MS = 2_000;

export interface RedisConnectionOptions {
  /** Fail a command not answered in this long (a hung or paused Redis). */
  readonly commandTimeoutMs?: number;
  readonly connectionName?: string;
}

/**
 * An ioredis client that fails fast instead of queueing: while Redis is
 * unreachable every command rejects at once (so Submit answers UNAVAILABLE
 * promptly instead of hanging), and the client keeps reconnecting in the
 * background, so service resumes by itself when Redis is back.
 */
export async function connectRedis(url: string, logger: Logger, options: RedisConnectionOptions = {}): Promise<Redis> {
  const redis = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: 2_000,
    commandTimeout: options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
    connectionName: options.connectionName ?? "tollgate",
    retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 5), 1_000),
  });
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
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    throw new Error(`cannot reach Redis at ${redactUrl(url)}: ${(error as Error).message}`);
  }
  return redis;
}

/** The URL without its password, for logs and messages. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, "//***@");
}

/** The command timeout this client was made with. */
export function commandTimeoutOf(redis: Redis): number {
  return redis.options.commandTimeout ?? DEFAULT_COMMAND_TIMEOUT_MS;
}
