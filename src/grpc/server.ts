import { readFile } from "node:fs/promises";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import type { Redis } from "ioredis";
import type { Config } from "../config.js";
import { grpcServiceDefinition } from "./service-definition.js";
import { loadHandlers } from "../core/handlers.js";
import { HealthReporter } from "./health.js";
import { loadAuthenticator } from "./api-keys.js";
import { systemClock, type Clock } from "../core/clock.js";
import { Drainer, type ClaimObserver } from "../core/drainer.js";
import { unavailable } from "../core/service-error.js";
import { createKeys } from "../redis/keys.js";
import { bindMetrics, metrics } from "../metrics.js";
import type { Logger } from "../logger.js";
import { protocolErrorsInterceptor } from "./protocol-errors-interceptor.js";
import { rateLimitInterceptor } from "./rate-limit-interceptor.js";
import { formatRatePolicy } from "../core/rate-policy.js";
import { ProgressHub } from "../core/progress-hub.js";
import { RateWindows } from "../redis/rate-windows.js";
import { reflectionService } from "./reflection.js";
import { RedisStore } from "../redis/redis-store.js";
import { TaskRunner } from "../core/task-runner.js";
import { taskServiceImplementation } from "./task-service.js";
import { file_grpc_health_v1_health } from "../../gen/ts/grpc/health/v1/health_pb.js";
import { TaskService, file_tollgate_v1_task_service } from "../../gen/ts/tollgate/v1/task_service_pb.js";

const DAY_SECONDS = 86_400;
/** Streams one connection may have open at once (1,000 watchers need 10 connections). */
export const MAX_CONCURRENT_STREAMS = 100;
const DEAD_LETTER_CAP = 10_000;
const RETRY_MAX_MS = 300_000;
/**
 * grpc-js refuses larger messages itself, with RESOURCE_EXHAUSTED; below this
 * our own check answers INVALID_ARGUMENT naming the payload, so the bound sits
 * well above the payload cap.
 */
const maxMessageBytes = (maxPayloadBytes: number): number => Math.max(4 * 1024 * 1024, 2 * maxPayloadBytes + 64 * 1024);

export interface ServerOptions {
  readonly clock?: Clock;
  /** Sees every claim step (tests and benchmarks measure lateness with it). */
  readonly observeClaims?: ClaimObserver;
  /** Adds more services, behind the same interceptors (tests add one to see that auth covers it). */
  readonly addServices?: (server: Server) => void;
}

export interface RunningServer {
  readonly port: number;
  readonly health: HealthReporter;
  readonly queue: RedisStore;
  readonly hub: ProgressHub;
  /** Stops serving: NOT_SERVING, refuse new calls, let running tasks finish. Idempotent. */
  close(graceMs?: number): Promise<void>;
}

/** Serves TaskService, health and reflection on one port, over the given Redis. */
export async function startServer(
  config: Config,
  redis: Redis,
  logger: Logger,
  options: ServerOptions = {},
): Promise<RunningServer> {
  const clock = options.clock ?? systemClock;
  const keys = createKeys();
  const windows = new RateWindows(redis, config.ratePolicy, keys);
  const queue = new RedisStore(redis, keys, windows, {
    maxBacklog: config.maxBacklog,
    leaseMs: config.leaseMs,
    maxAttempts: config.maxAttempts,
    deadLetterCap: DEAD_LETTER_CAP,
    idempotencyTtlSeconds: DAY_SECONDS,
    retentionSeconds: DAY_SECONDS,
    clock,
  });
  const handlers = await loadHandlers(config.handler, config.taskLog);
  const auth = await loadAuthenticator(config.authKeys);
  const runner = new TaskRunner(queue, handlers, logger, clock, {
    concurrency: config.concurrency,
    attemptTimeoutMs: config.taskTimeoutMs,
    leaseMs: config.leaseMs,
    retryBaseMs: config.retryBackoffMs,
    retryMaxMs: RETRY_MAX_MS,
  });
  const subscriber = redis.duplicate({ connectionName: "tollgate-wake" });
  subscriber.on("error", () => {}); // the main connection reports Redis trouble
  await subscriber.connect();
  const observe: ClaimObserver = (result) => {
    for (const task of result.claimed) metrics.startLatenessSeconds.observe(Math.max(0, result.now - task.dueAt) / 1000);
    options.observeClaims?.(result);
  };
  const drainer = new Drainer(queue, runner, subscriber, keys.wakeChannel, logger, clock, { maxSleepMs: config.leaseMs }, observe);
  bindMetrics(queue);
  const hub = new ProgressHub(queue, subscriber, keys.progressChannel, clock, logger, {
    coalesceMs: 100,
    heartbeatMs: 5_000,
  });
  const health = new HealthReporter(redis, [TaskService.typeName], logger);

  const server = new Server({
    interceptors: [
      protocolErrorsInterceptor,
      rateLimitInterceptor({
        queue,
        runner,
        policy: config.ratePolicy,
        kinds: handlers.kinds,
        maxPayloadBytes: config.maxPayloadBytes,
        auth,
        logger,
      }),
    ],
    "grpc.max_receive_message_length": maxMessageBytes(config.maxPayloadBytes),
    // Bounds on what one connection may hold or cost: concurrent streams (a
    // client multiplexing more waits for HTTP/2 flow control), keepalive pings
    // that find dead peers, and closing connections idle for 5 minutes.
    "grpc.max_concurrent_streams": MAX_CONCURRENT_STREAMS,
    "grpc.keepalive_time_ms": 60_000,
    "grpc.keepalive_timeout_ms": 20_000,
    "grpc.max_connection_idle_ms": 300_000,
  });
  server.addService(
    grpcServiceDefinition(TaskService),
    taskServiceImplementation({ queue, hub, policy: config.ratePolicy, logger, maxAttempts: config.maxAttempts }),
  );
  health.implementation.addToServer(server);
  reflectionService([file_tollgate_v1_task_service, file_grpc_health_v1_health]).addToServer(server);
  options.addServices?.(server);

  const credentials = await serverCredentials(config);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${config.host}:${config.port}`, credentials, (error, boundPort) =>
      error ? reject(new Error(`cannot listen on ${config.host}:${config.port}: ${error.message}`)) : resolve(boundPort),
    ),
  );
  await drainer.start();
  logger.info({ host: config.host, port, policy: formatRatePolicy(config.ratePolicy) }, "serving");

  let closing: Promise<void> | undefined;
  return {
    port,
    health,
    queue,
    hub,
    close: (graceMs = 10_000) =>
      (closing ??= (async () => {
        health.shutdown();
        // Claim nothing more from now on (other processes take over); a claim
        // in flight is waited for and what it took handed back.
        const drainerClosed = drainer.close();
        // Open streams would hold tryShutdown forever: end them first.
        hub.close(unavailable("server shutting down; reconnect to another instance"));
        await new Promise<void>((resolve) => {
          const force = setTimeout(() => server.forceShutdown(), graceMs);
          server.tryShutdown(() => {
            clearTimeout(force);
            resolve();
          });
        });
        await drainerClosed;
        // Then running tasks get their grace; those cut short are handed back.
        await runner.close(graceMs);
        subscriber.disconnect();
        await handlers.close();
      })()),
  };
}

async function serverCredentials(config: Config): Promise<ServerCredentials> {
  if (config.tlsCert === undefined || config.tlsKey === undefined) return ServerCredentials.createInsecure();
  const [cert, key, ca] = await Promise.all([
    readFile(config.tlsCert),
    readFile(config.tlsKey),
    config.tlsCa === undefined ? Promise.resolve(null) : readFile(config.tlsCa),
  ]);
  return ServerCredentials.createSsl(ca, [{ cert_chain: cert, private_key: key }], ca !== null);
}
