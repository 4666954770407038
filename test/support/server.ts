import { reportShortOfReplicas } from "../../src/cluster/replica-shortfall.js";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { RedisClient } from "../../src/redis/connection.js";
import { parseConfig, type Config } from "../../src/config.js";
import { createLogger } from "../../src/logger.js";
import { connectRedis } from "../../src/redis/connection.js";
import { createRedisStore } from "../../src/redis/create-redis-store.js";
import type { RedisStore } from "../../src/redis/redis-store.js";
import { startServer, type RunningServer, type ServerOptions } from "../../src/grpc/server.js";
import { TaskService } from "../../gen/ts/tollgate/v1/task_service_pb.js";

export interface TestServer {
  readonly config: Config;
  readonly server: RunningServer;
  /** The server's task store, over `redis`. */
  readonly store: RedisStore;
  readonly redis: RedisClient;
  readonly address: string;
  readonly client: Client<typeof TaskService>;
  close(): Promise<void>;
}

/**
 * A real Tollgate server on port 0 over the given Redis, configured as
 * `tollgate serve` would be from these environment variables, and a
 * generated Connect client speaking gRPC to it.
 */
export async function startTestServer(
  redisUrl: string,
  env: Record<string, string> = {},
  options: ServerOptions = {},
): Promise<TestServer> {
  const dataDir = await mkdtemp(join(tmpdir(), "tollgate-test-"));
  const config = parseConfig({
    TOLLGATE_HOST: "127.0.0.1",
    TOLLGATE_PORT: "0",
    TOLLGATE_REDIS_URL: redisUrl,
    TOLLGATE_DATA_DIR: dataDir,
    TOLLGATE_LOG_LEVEL: process.env.TOLLGATE_TEST_LOG_LEVEL ?? "silent",
    ...env,
  });
  const logger = createLogger(config.logLevel);
  const redis = await connectRedis(redisUrl, logger);
  // What a worker does with changes short of their replicas (src/cluster/worker.ts).
  const store = createRedisStore(redis, config, { onShortOfReplicas: reportShortOfReplicas(logger) });
  let server: RunningServer;
  try {
    server = await startServer(config, store, logger, {
      policies: store.policies,
      workerDirectory: store.workers,
      ...options,
    });
  } catch (error) {
    store.close();
    redis.disconnect();
    throw error;
  }
  const address = `http://127.0.0.1:${server.port}`;
  const client = createClient(TaskService, createGrpcTransport({ baseUrl: address }));
  return {
    config,
    server,
    store,
    redis,
    address,
    client,
    close: async () => {
      await server.close(1_000);
      store.close();
      redis.disconnect();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
