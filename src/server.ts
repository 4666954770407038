import { readFile } from "node:fs/promises";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import type { Redis } from "ioredis";
import type { Config } from "./config.js";
import { grpcServiceDefinition } from "./grpc-service.js";
import { loadHandlers } from "./handlers.js";
import { HealthReporter } from "./health.js";
import { createKeys } from "./keys.js";
import type { Logger } from "./logger.js";
import { rateLimitInterceptor } from "./rate-limit-interceptor.js";
import { RateWindows } from "./rate-windows.js";
import { reflectionService } from "./reflection.js";
import { TaskQueue } from "./task-queue.js";
import { TaskRunner } from "./task-runner.js";
import { taskServiceImplementation } from "./task-service.js";
import { file_grpc_health_v1_health } from "../gen/ts/grpc/health/v1/health_pb.js";
import { TaskService, file_tollgate_v1_task_service } from "../gen/ts/tollgate/v1/task_service_pb.js";

/** Tunables that are not (yet) configuration. */
export const TASK_LEASE_MS = 30_000;
export const ATTEMPT_TIMEOUT_MS = 30_000;
export const MAX_ATTEMPTS = 1;
const DAY_SECONDS = 86_400;
/** Room for the rest of a SubmitRequest beside its payload. */
const MESSAGE_OVERHEAD_BYTES = 16 * 1024;

export interface RunningServer {
  readonly port: number;
  readonly health: HealthReporter;
  readonly queue: TaskQueue;
  /** Stops serving: NOT_SERVING, refuse new calls, let running tasks finish. Idempotent. */
  close(graceMs?: number): Promise<void>;
}

/** Serves TaskService, health and reflection on one port, over the given Redis. */
export async function startServer(config: Config, redis: Redis, logger: Logger): Promise<RunningServer> {
  const keys = createKeys();
  const windows = new RateWindows(redis, config.ratePolicy, keys);
  const queue = new TaskQueue(redis, keys, windows, {
    maxBacklog: config.maxBacklog,
    leaseMs: TASK_LEASE_MS,
    idempotencyTtlSeconds: DAY_SECONDS,
    retentionSeconds: DAY_SECONDS,
  });
  const handlers = await loadHandlers(config.handler, config.taskLog);
  const runner = new TaskRunner(queue, handlers, logger, { attemptTimeoutMs: ATTEMPT_TIMEOUT_MS });
  const health = new HealthReporter(redis, [TaskService.typeName], logger);

  const server = new Server({
    interceptors: [
      rateLimitInterceptor({
        queue,
        policy: config.ratePolicy,
        kinds: handlers.kinds,
        maxPayloadBytes: config.maxPayloadBytes,
        logger,
      }),
    ],
    "grpc.max_receive_message_length": config.maxPayloadBytes + MESSAGE_OVERHEAD_BYTES,
  });
  server.addService(
    grpcServiceDefinition(TaskService),
    taskServiceImplementation({ queue, runner, policy: config.ratePolicy, logger, maxAttempts: MAX_ATTEMPTS }),
  );
  health.implementation.addToServer(server);
  reflectionService([file_tollgate_v1_task_service, file_grpc_health_v1_health]).addToServer(server);

  const credentials = await serverCredentials(config);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${config.host}:${config.port}`, credentials, (error, boundPort) =>
      error ? reject(new Error(`cannot listen on ${config.host}:${config.port}: ${error.message}`)) : resolve(boundPort),
    ),
  );
  logger.info({ host: config.host, port, policy: config.ratePolicy }, "serving");

  let closing: Promise<void> | undefined;
  return {
    port,
    health,
    queue,
    close: (graceMs = 10_000) =>
      (closing ??= (async () => {
        health.shutdown();
        await new Promise<void>((resolve) => {
          const force = setTimeout(() => server.forceShutdown(), graceMs);
          server.tryShutdown(() => {
            clearTimeout(force);
            resolve();
          });
        });
        await runner.close(graceMs);
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
