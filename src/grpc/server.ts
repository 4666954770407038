import { readFile } from "node:fs/promises";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import type { Config } from "../config.js";
import { grpcServiceDefinition } from "./service-definition.js";
import { loadHandlers } from "../core/handlers.js";
import { HealthReporter } from "./health.js";
import { loadAuthenticator } from "./api-keys.js";
import { systemClock, type Clock } from "../core/clock.js";
import { Drainer, type ClaimObserver } from "../core/drainer.js";
import { unavailable } from "../core/service-error.js";
import { bindMetrics, metrics } from "../metrics.js";
import type { Logger } from "../logger.js";
import { protocolErrorsInterceptor } from "./protocol-errors-interceptor.js";
import { rateLimitInterceptor } from "./rate-limit-interceptor.js";
import { formatRatePolicy } from "../core/rate-policy.js";
import type { TaskStore } from "../core/store.js";
import { ProgressHub } from "../core/progress-hub.js";
import { ReflectionService } from "./reflection.js";
import { TaskRunner } from "../core/task-runner.js";
import { taskServiceImplementation } from "./task-service.js";
import type { Tracing } from "../tracing.js";
import { file_grpc_health_v1_health } from "../../gen/ts/grpc/health/v1/health_pb.js";
import { TaskService, file_tollgate_v1_task_service } from "../../gen/ts/tollgate/v1/task_service_pb.js";
import { PolicyService, file_tollgate_v1_policy_service } from "../../gen/ts/tollgate/v1/policy_service_pb.js";
import type { PolicyStore } from "../core/policy-store.js";
import { policyServiceImplementation } from "./policy-service.js";
import { hostname } from "node:os";
import { RemoteWorkers } from "../core/remote-workers.js";
import type { WorkerDirectory } from "../core/worker-directory.js";
import { workerServiceImplementation } from "./worker-service.js";
import { WorkerService, file_tollgate_v1_worker_service } from "../../gen/ts/tollgate/v1/worker_service_pb.js";

/** Streams one connection may have open at once (1,000 watchers need 10 connections). */
const MAX_CONCURRENT_STREAMS = 100;
const RETRY_MAX_MS = 300_000;
/** How long close() still waits for grpc-js' own close callback once it has forced the shutdown. */
const FORCED_CLOSE_WAIT_MS = 250;
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
  /** Plans and users' policies: PolicyService is served over them (absent: it is not served). */
  readonly policies?: PolicyStore;
  /** Adds more services, behind the same interceptors (tests add one to see that auth covers it). */
  readonly addServices?: (server: Server) => void;
  /** Traces Submit and every attempt (src/tracing.ts); absent: no tracing. */
  readonly tracing?: Tracing | undefined;
  /** Every host's connected workers; absent: ListWorkers and known kinds see this process's only. */
  readonly workerDirectory?: WorkerDirectory;
}

/** How long Submit's known kinds (TOLLGATE_REQUIRE_KNOWN_KINDS) are kept before the directory is read again. */
const KNOWN_KINDS_CACHE_MS = 1_000;

export interface RunningServer {
  readonly port: number;
  readonly health: HealthReporter;
  readonly hub: ProgressHub;
  /** Stops serving: NOT_SERVING, refuse new calls, let running tasks finish. Idempotent. */
  close(graceMs?: number): Promise<void>;
}

/**
 * Serves TaskService, PolicyService (given its store), health and reflection on one port, over the given task
 * store (which stays the caller's: close it after the server).
 */
export async function startServer(
  config: Config,
  store: TaskStore,
  logger: Logger,
  options: ServerOptions = {},
): Promise<RunningServer> {
  const clock = options.clock ?? systemClock;
  const handlers = await loadHandlers(config.handler, config.taskLog);
  const auth = await loadAuthenticator(config.authKeys);
  const runnerOptions = {
    attemptTimeoutMs: config.taskTimeoutMs,
    leaseMs: config.leaseMs,
    retryBaseMs: config.retryBackoffMs,
    retryMaxMs: RETRY_MAX_MS,
    ...(options.tracing ? { tracer: options.tracing } : {}),
  };
  const runner = new TaskRunner(store, handlers, logger, clock, { ...runnerOptions, concurrency: config.concurrency });
  const observe: ClaimObserver = (result) => {
    for (const task of result.claimed)
      metrics.startLatenessSeconds.observe(Math.max(0, result.now - task.dueAt) / 1000);
    options.observeClaims?.(result);
  };
  // Tasks of other kinds are parked for the workers that run them (remote workers, or other hosts' handlers).
  const drainer = new Drainer(
    store,
    runner,
    logger,
    clock,
    { maxSleepMs: config.leaseMs, claimer: { kinds: ["", ...handlers.kinds], routes: true } },
    observe,
  );
  const serverName = `${hostname()}:${process.pid}`;
  const remoteWorkers = new RemoteWorkers(store, logger, clock, {
    runner: runnerOptions,
    maxSleepMs: config.leaseMs,
    observe,
    server: serverName,
    ...(options.workerDirectory ? { directory: options.workerDirectory } : {}),
  });
  const listWorkers = async () =>
    options.workerDirectory
      ? options.workerDirectory.list()
      : remoteWorkers.list().map((worker) => ({ ...worker, server: serverName }));
  let knownKinds: { readonly at: number; readonly kinds: Promise<ReadonlySet<string>> } | undefined;
  const kindsRunAnywhere = (): Promise<ReadonlySet<string>> => {
    if (!knownKinds || clock.now() - knownKinds.at > KNOWN_KINDS_CACHE_MS) {
      const kinds = listWorkers().then(
        (workers) => new Set([...handlers.kinds, ...remoteWorkers.kinds(), ...workers.flatMap((w) => w.kinds)]),
      );
      knownKinds = { at: clock.now(), kinds };
      // A failed read is not kept.
      kinds.catch(() => {
        knownKinds = undefined;
      });
    }
    return knownKinds.kinds;
  };
  const workerService = workerServiceImplementation({
    workers: remoteWorkers,
    listWorkers,
    logger,
    clock,
    leaseMs: config.leaseMs,
    attemptTimeoutMs: config.taskTimeoutMs,
  });
  bindMetrics(store);
  const hub = new ProgressHub(store, clock, logger, {
    coalesceMs: 100,
    heartbeatMs: 5_000,
  });
  const services = [
    TaskService.typeName,
    WorkerService.typeName,
    ...(options.policies ? [PolicyService.typeName] : []),
  ];
  const health = new HealthReporter(store, services, logger);

  const server = new Server({
    interceptors: [
      protocolErrorsInterceptor,
      rateLimitInterceptor({
        queue: store,
        runner,
        policy: config.ratePolicy,
        kinds: handlers.kinds,
        ...(config.requireKnownKinds ? { knownKinds: kindsRunAnywhere } : {}),
        maxPayloadBytes: config.maxPayloadBytes,
        auth,
        logger,
        tracing: options.tracing,
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
    // No channelz service is served, so grpc-js' channelz bookkeeping per call,
    // stream and socket is read by no one: off, a Submit costs the server about
    // 6% less CPU (docs/performance.md).
    "grpc.enable_channelz": 0,
  });
  server.addService(
    grpcServiceDefinition(TaskService),
    taskServiceImplementation({
      queue: store,
      hub,
      policy: config.ratePolicy,
      logger,
      maxAttempts: config.maxAttempts,
    }),
  );
  if (options.policies) {
    server.addService(
      grpcServiceDefinition(PolicyService),
      policyServiceImplementation({ store: options.policies, logger }),
    );
  }
  server.addService(grpcServiceDefinition(WorkerService), workerService.implementation);
  health.addToServer(server);
  new ReflectionService([
    file_tollgate_v1_task_service,
    file_tollgate_v1_policy_service,
    file_tollgate_v1_worker_service,
    file_grpc_health_v1_health,
  ]).addToServer(server);
  options.addServices?.(server);

  const credentials = await serverCredentials(config);
  // The port is bound while the drainer subscribes: both wait on the
  // network. Health stays NOT_SERVING until both are done.
  const binding = new Promise<number>((resolve, reject) =>
    server.bindAsync(`${config.host}:${config.port}`, credentials, (error, boundPort) =>
      error
        ? reject(new Error(`cannot listen on ${config.host}:${config.port}: ${error.message}`))
        : resolve(boundPort),
    ),
  );
  const [bound, started] = await Promise.allSettled([binding, drainer.start()]);
  if (bound.status === "rejected" || started.status === "rejected") {
    // The port cannot be bound or the store cannot be reached: serve nothing
    // rather than serve half, and hand back anything the drainer took.
    health.shutdown();
    server.forceShutdown();
    if (started.status === "fulfilled") {
      await drainer.close();
      await runner.close(0);
    }
    await handlers.close();
    throw bound.status === "rejected" ? bound.reason : (started as PromiseRejectedResult).reason;
  }
  const port = bound.value;
  health.ready();
  logger.info({ host: config.host, port, policy: formatRatePolicy(config.ratePolicy) }, "serving");

  let closing: Promise<void> | undefined;
  return {
    port,
    health,
    hub,
    close: (graceMs = 10_000) =>
      (closing ??= (async () => {
        health.shutdown();
        // Claim nothing more from now on (other processes take over); a claim
        // in flight is waited for and what it took handed back.
        const drainerClosed = drainer.close();
        // Open streams would hold tryShutdown forever: end them first.
        hub.close(unavailable("server shutting down; reconnect to another instance"));
        // Workers' tasks get the grace to be answered, then are handed back; then their streams end.
        await remoteWorkers.close(graceMs);
        workerService.endAll();
        await new Promise<void>((resolve) => {
          const force = setTimeout(() => {
            server.forceShutdown();
            // forceShutdown ends every HTTP/2 session, but the listener's
            // close still waits for sockets that never became one (a TLS
            // handshake in progress): do not wait on those.
            setTimeout(resolve, FORCED_CLOSE_WAIT_MS).unref();
          }, graceMs);
          server.tryShutdown(() => {
            clearTimeout(force);
            resolve();
          });
        });
        await drainerClosed;
        // Then running tasks get their grace; those cut short are handed back.
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
