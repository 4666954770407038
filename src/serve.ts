import type { Redis } from "ioredis";
import type { Config } from "./config.js";
import { startEmbeddedRedis, type EmbeddedRedis } from "./embedded-redis.js";
import { createLogger } from "./logger.js";
import { connectRedis, redactUrl } from "./redis-connection.js";
import { startServer, type RunningServer } from "./server.js";

/** Grace for running tasks when stopping on SIGTERM or SIGINT. */
const SHUTDOWN_GRACE_MS = 10_000;

/**
 * `tollgate serve`: Redis (the configured one, or an embedded redis-server),
 * then the gRPC server, until SIGTERM or SIGINT; a second signal forces.
 */
export async function serve(config: Config): Promise<void> {
  const logger = createLogger(config.logLevel);
  let embedded: EmbeddedRedis | undefined;
  let redis: Redis | undefined;
  let server: RunningServer | undefined;
  const stopAll = async (): Promise<void> => {
    await server?.close(SHUTDOWN_GRACE_MS);
    await redis?.quit().catch(() => redis?.disconnect());
    await embedded?.stop();
  };
  try {
    if (config.redisUrl === undefined) embedded = await startEmbeddedRedis(config.dataDir, logger);
    const url = config.redisUrl ?? embedded!.url;
    redis = await connectRedis(url, logger);
    logger.info({ redis: redactUrl(url), embedded: embedded !== undefined }, "connected to redis");
    server = await startServer(config, redis, logger);
  } catch (error) {
    await stopAll();
    throw error;
  }
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (++signals > 1) {
      logger.warn({ signal }, "second signal: stopping now");
      process.exit(1);
    }
    logger.info({ signal }, "stopping");
    stopAll().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, "error while stopping");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
}
