import cluster from "node:cluster";
import { REDIS_CHECKED_ENV, WORKER_INDEX_ENV, type WorkerMessage } from "./messages.js";
import type { Config } from "../config.js";
import { createLogger } from "../logger.js";
import { reportShortOfReplicas } from "./replica-shortfall.js";
import { connectRedis, type RedisClient } from "../redis/connection.js";
import { checkRedisRequirements } from "../redis/requirements.js";
import type { RedisStore } from "../redis/redis-store.js";
import type { RunningServer } from "../grpc/server.js";
import { startTracing } from "../tracing-start.js";
import type { RunningTracing } from "../tracing.js";
import { systemClock } from "../core/clock.js";
import { HeartbeatSender, heartbeatPeriodMs } from "./heartbeat.js";
import { loadedCode } from "./loaded-code.js";

/** Test-only: "1" lets SIGUSR2 block the event loop forever (heartbeat tests). */
const TEST_FAULTS_ENV = "TOLLGATE_TEST_FAULTS";

function send(message: WorkerMessage): void {
  if (process.connected) process.send?.(message);
}

/**
 * One cluster worker: the gRPC server and drainer over the primary's Redis,
 * heartbeating its event-loop lag to the primary. SIGTERM or SIGINT (or the
 * primary going away) stops it gracefully; the primary decides when to force.
 */
export async function runWorker(config: Config): Promise<void> {
  const worker = Number(process.env[WORKER_INDEX_ENV] ?? cluster.worker?.id ?? 0);
  const logger = createLogger(config.logLevel, { worker }, config.logFormat);
  // Heartbeats start before anything else, so a worker stuck in start-up is
  // caught like one stuck later. The lag they carry is how late the heartbeat
  // timer itself fired: no extra timer wakes an idle worker to measure it.
  const heartbeat = new HeartbeatSender(systemClock, heartbeatPeriodMs(config.heartbeatTimeoutMs), (eventLoopLagMs) =>
    send({ type: "tollgate:heartbeat", eventLoopLagMs }),
  );
  heartbeat.start();
  if (process.env[TEST_FAULTS_ENV] === "1") {
    process.on("SIGUSR2", () => {
      logger.warn("test fault: blocking the event loop");
      for (;;) {
        // Blocks until killed: what a stuck handler or an endless loop looks like.
      }
    });
  }

  // The store's and the server's modules (most of what a worker loads) load
  // while Redis is connected to and checked, not after.
  const modules = Promise.all([import("../redis/create-redis-store.js"), import("../grpc/server.js")]);
  modules.catch(() => {}); // awaited below; a failure is reported there

  let redis: RedisClient | undefined;
  let store: RedisStore | undefined;
  let server: RunningServer | undefined;
  let tracing: RunningTracing | undefined;
  let stopping = false;
  const stop = (why: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ why }, "worker stopping");
    (async () => {
      await server?.close(config.shutdownGraceMs);
      // The last attempts' spans, before the process goes.
      await tracing?.shutdown().catch((error: unknown) => {
        logger.warn({ error: (error as Error).message }, "could not export the last spans");
      });
      heartbeat.stop();
      store?.close();
      await redis?.quit().catch(() => redis?.disconnect());
    })().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, "error while stopping");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("disconnect", () => stop("the primary went away"));

  try {
    tracing = await startTracing(process.env, `worker-${worker}`);
    if (tracing) logger.info("tracing: spans exported over OTLP (OTEL_EXPORTER_OTLP_* settings)");
    const connected = await connectRedis(config.redisUrl!, logger);
    redis = connected;
    // A replacement worker checks again: Redis may have changed since the primary checked.
    if (process.env[REDIS_CHECKED_ENV] !== "1") await checkRedisRequirements(connected, config, logger);
    const [{ createRedisStore }, { startServer }] = await modules;
    store = createRedisStore(connected, config, { onShortOfReplicas: reportShortOfReplicas(logger) });
    server = await startServer(config, store, logger, {
      tracing: tracing?.tracing,
      policies: store.policies,
      workerDirectory: store.workers,
    });
  } catch (error) {
    logger.error({ err: error }, "worker could not start");
    process.exit(1);
  }
  if (logger.isLevelEnabled("debug")) logger.debug(loadedCode(), "worker code");
  send({ type: "tollgate:serving", port: server.port });
}
