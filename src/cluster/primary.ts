import cluster, { type Worker } from "node:cluster";
import { loadAuthenticator } from "../grpc/api-keys.js";
import { REDIS_CHECKED_ENV, WORKER_INDEX_ENV, isWorkerMessage } from "./messages.js";
import type { Config } from "../config.js";
import { startEmbeddedRedis, type EmbeddedRedis } from "../redis/embedded-redis.js";
import { createLogger, type Logger } from "../logger.js";
import { startHttpServer, type HttpServer } from "./http-server.js";
import { webApiRoutes, type GrpcTarget } from "./web-api.js";
import { loadDashboard } from "./dashboard-assets.js";
import { PolicyService } from "../../gen/ts/tollgate/v1/policy_service_pb.js";
import { WorkerService } from "../../gen/ts/tollgate/v1/worker_service_pb.js";
import { TaskService } from "../../gen/ts/tollgate/v1/task_service_pb.js";
import { connectRedis, redactUrl } from "../redis/connection.js";
import { checkRedisRequirements } from "../redis/requirements.js";
import { systemClock, type Clock } from "../core/clock.js";
import { HeartbeatMonitor } from "./heartbeat.js";
import { WorkerRestartBackoff } from "./restart-backoff.js";

/** Workers get this long to load before their first heartbeat is due. */
const STARTUP_ALLOWANCE_MS = 20_000;
/** Beyond the tasks' grace, how long stopping workers get before SIGKILL. */
const STOP_MARGIN_MS = 5_000;

interface Slot {
  readonly index: number;
  worker: Worker | undefined;
  startedAt: number;
  served: boolean;
  readonly backoff: WorkerRestartBackoff;
  cancelRestart: (() => void) | undefined;
}

type Lifecycle =
  | { readonly kind: "running" }
  | { readonly kind: "stopping"; readonly done: Promise<void> }
  | { readonly kind: "forcing" };

/**
 * The cluster primary: owns the embedded Redis (when no Redis is configured)
 * and the HTTP port (metrics, the API for browsers), forks the workers that share the gRPC port, and
 * keeps them alive: a dead worker is replaced (with growing delay while it
 * keeps dying), and one whose heartbeats stop (a blocked event loop) is
 * killed and replaced. Each worker is watched on its own IPC channel, never
 * through the shared port.
 */
export async function runPrimary(config: Config): Promise<void> {
  const logger = createLogger(config.logLevel, { role: "primary" }, config.logFormat);
  // What bin/tollgate.js chose: the compiled dist/, or the sources through tsx.
  const code = import.meta.url.endsWith(".ts") ? "src" : "dist";
  if (code === "src") {
    logger.warn(
      { why: process.env.TOLLGATE_CODE_WHY },
      "running the TypeScript sources through tsx, not the compiled dist/ (npm run build compiles them)",
    );
  }
  let embedded: EmbeddedRedis | undefined;
  let http: HttpServer | undefined;
  // Set once a worker serves: where the API for browsers forwards calls.
  let grpcTarget: GrpcTarget | string | undefined = config.tlsCa
    ? "the API for browsers is off: the gRPC port requires client certificates (TOLLGATE_TLS_CA)"
    : undefined;
  // A bad key file stops everything now, with its line, rather than every worker.
  await loadAuthenticator(config.authKeys);
  try {
    if (config.redisUrl === undefined) embedded = await startEmbeddedRedis(config.dataDir, logger);
    const redisUrl = config.redisUrl ?? embedded!.url;
    // Fail at once, with one clear message, rather than crash-loop workers:
    // an unreachable Redis, or one the scripts cannot run on or that may
    // evict their keys (exit 2, naming the fix).
    const probe = await connectRedis(redisUrl, logger);
    try {
      await checkRedisRequirements(probe, config, logger);
    } finally {
      await probe.quit().catch(() => probe.disconnect());
    }
    logger.info(
      { redis: redactUrl(redisUrl), embedded: embedded !== undefined, workers: config.workers, code },
      "starting workers",
    );
    if (config.metricsPort > 0) {
      http = await startHttpServer(
        config.host,
        config.metricsPort,
        logger,
        webApiRoutes(() => grpcTarget, [TaskService, PolicyService, WorkerService]),
        await loadDashboard(),
      );
    }
    const onServing = (port: number): void => {
      if (typeof grpcTarget !== "string") grpcTarget = { baseUrl: loopbackUrl(config, port), tls: !!config.tlsCert };
    };
    supervise(config, redisUrl, logger, onServing, async () => {
      await http?.close();
      await embedded?.stop();
    });
  } catch (error) {
    await http?.close();
    await embedded?.stop();
    throw error;
  }
}

/** The workers' gRPC port as this host reaches it (0.0.0.0 and :: listen on loopback too). */
function loopbackUrl(config: Config, port: number): string {
  const scheme = config.tlsCert ? "https" : "http";
  const host =
    config.host === "0.0.0.0" || config.host === ""
      ? "127.0.0.1"
      : config.host === "::"
        ? "[::1]"
        : config.host.includes(":")
          ? `[${config.host}]`
          : config.host;
  return `${scheme}://${host}:${port}`;
}

function supervise(
  config: Config,
  redisUrl: string,
  logger: Logger,
  onServing: (port: number) => void,
  cleanUp: () => Promise<void>,
  clock: Clock = systemClock,
): void {
  let lifecycle: Lifecycle = { kind: "running" };
  let everServed = false;
  const slots: Slot[] = Array.from({ length: config.workers }, (_, index) => ({
    index,
    worker: undefined,
    startedAt: 0,
    served: false,
    backoff: new WorkerRestartBackoff(),
    cancelRestart: undefined,
  }));
  const slotOf = (worker: Worker): Slot | undefined => slots.find((slot) => slot.worker === worker);
  const watchdog = new HeartbeatMonitor<Slot>(clock, {
    timeoutMs: config.heartbeatTimeoutMs,
    startupAllowanceMs: STARTUP_ALLOWANCE_MS,
    onSilent: ({ key: slot, silentMs, lastLagMs }) => {
      if (!slot.worker || slot.worker.isDead()) return;
      logger.error(
        { worker: slot.index, pid: slot.worker.process.pid, silentMs, lastLagMs },
        "worker stopped heartbeating (event loop blocked?); killing it",
      );
      slot.worker.process.kill("SIGKILL");
    },
  });

  const fork = (slot: Slot, redisJustChecked = false): void => {
    slot.cancelRestart = undefined;
    const worker = cluster.fork({
      TOLLGATE_REDIS_URL: redisUrl,
      [WORKER_INDEX_ENV]: String(slot.index),
      ...(redisJustChecked ? { [REDIS_CHECKED_ENV]: "1" } : {}),
    });
    slot.worker = worker;
    slot.startedAt = clock.now();
    slot.served = false;
    watchdog.watch(slot);
    worker.on("message", (message: unknown) => {
      if (!isWorkerMessage(message)) return;
      watchdog.heard(slot, message.type === "tollgate:heartbeat" ? message.eventLoopLagMs : undefined);
      if (message.type === "tollgate:serving") {
        slot.served = true;
        everServed = true;
        onServing(message.port);
        logger.info(
          { worker: slot.index, startMs: clock.now() - slot.startedAt, pid: worker.process.pid, port: message.port },
          "worker serving",
        );
      }
    });
  };

  cluster.on("exit", (worker, code, signal) => {
    const slot = slotOf(worker);
    if (!slot) return;
    slot.worker = undefined;
    watchdog.forget(slot);
    if (lifecycle.kind !== "running") return;
    if (!slot.served && !everServed) {
      logger.fatal({ worker: slot.index, code, signal }, "a worker failed to start; stopping (see its error above)");
      void stopAll(1);
      return;
    }
    const lived = clock.now() - slot.startedAt;
    // The first replacement is immediate; a worker that keeps dying waits
    // 250 ms, 500 ms, 1 s, ... up to 30 s between tries.
    const delay = slot.backoff.next(lived);
    logger.warn(
      { worker: slot.index, pid: worker.process.pid, code, signal, livedMs: lived, restartInMs: delay },
      "worker exited; replacing it",
    );
    slot.cancelRestart = clock.setTimer(() => fork(slot), delay);
  });

  watchdog.start();

  const stopAll = (code: number): Promise<void> => {
    if (lifecycle.kind !== "running") return lifecycle.kind === "stopping" ? lifecycle.done : Promise.resolve();
    watchdog.stop();
    for (const slot of slots) slot.cancelRestart?.();
    const done = (async () => {
      const live = slots.flatMap((slot) => (slot.worker && !slot.worker.isDead() ? [slot.worker] : []));
      const exited = live.map((worker) => new Promise<void>((resolve) => worker.once("exit", () => resolve())));
      for (const worker of live) worker.process.kill("SIGTERM");
      const force = setTimeout(() => {
        for (const worker of live) if (!worker.isDead()) worker.process.kill("SIGKILL");
      }, config.shutdownGraceMs + STOP_MARGIN_MS);
      await Promise.all(exited);
      clearTimeout(force);
      await cleanUp();
      logger.info("stopped");
      process.exit(code);
    })();
    lifecycle = { kind: "stopping", done };
    return done;
  };

  const onSignal = (signal: NodeJS.Signals): void => {
    if (lifecycle.kind === "running") {
      logger.info({ signal }, "stopping: workers finish their tasks");
      void stopAll(0);
      return;
    }
    if (lifecycle.kind === "forcing") return;
    lifecycle = { kind: "forcing" };
    logger.warn({ signal }, "second signal: killing workers now");
    for (const slot of slots) slot.worker?.process.kill("SIGKILL");
    void cleanUp().finally(() => process.exit(1));
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);

  // The first workers start right after runPrimary checked Redis' requirements.
  for (const slot of slots) fork(slot, true);
}
