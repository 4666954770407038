import { spawn } from "node:child_process";
import { mkdir, readFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { systemClock, type Clock } from "../core/clock.js";
import type { Logger } from "../logger.js";

export class RedisServerMissingError extends Error {
  override readonly name = "RedisServerMissingError";
  constructor() {
    super(
      "redis-server is not installed. Install it (Debian/Ubuntu: apt-get install -y redis-server; " +
        "macOS: brew install redis) or point Tollgate at a Redis with TOLLGATE_REDIS_URL=redis://host:6379",
    );
  }
}

export interface EmbeddedRedis {
  readonly url: string;
  readonly port: number;
  /** redis-server's pid now (it changes when it is restarted). */
  readonly pid: number | undefined;
  /** Stops redis-server (it writes its append-only file first) and restarts no more; idempotent. */
  stop(): Promise<void>;
}

// The shell in between ties Redis' life to ours, both ways. Our end of its
// stdin closing (a stop, or this process exiting however it exits) makes the
// reader stop Redis with SIGTERM, so a killed Tollgate never leaves an
// orphan; and the shell exits when Redis does, however Redis ends, so a dead
// Redis is seen and restarted. A background job's stdin is /dev/null, so the
// reader gets ours on fd 3. Exported for test harnesses that start a
// redis-server mode (sentinel) whose readiness line differs.
export const SUPERVISOR = `
exec 3<&0
redis-server "$@" 3<&- &
child=$!
(read _ <&3 || true; kill -TERM $child 2>/dev/null) &
reader=$!
exec 3<&-
wait $child
status=$?
kill $reader 2>/dev/null
exit $status
`;

/** Restart delays: 250 ms doubling to 30 s, from the start again once Redis stayed up 10 s. */
export const EMBEDDED_RESTART = { baseMs: 250, maxMs: 30_000, stableAfterMs: 10_000 } as const;

/**
 * The wait before each restart of something that keeps dying: `baseMs`,
 * doubling up to `maxMs`, back to `baseMs` once a run lasted `stableAfterMs`.
 */
export class RestartBackoff {
  private failures = 0;

  constructor(
    private readonly options: { readonly baseMs: number; readonly maxMs: number; readonly stableAfterMs: number },
  ) {}

  /** The delay before restarting after a run (or a failed start) that lasted `livedMs`. */
  next(livedMs: number): number {
    if (livedMs >= this.options.stableAfterMs) this.failures = 0;
    const delay = Math.min(this.options.maxMs, this.options.baseMs * 2 ** Math.min(this.failures, 30));
    this.failures++;
    return delay;
  }
}

/**
 * Starts a private redis-server: loopback only, a free port, append-only file
 * on, data under `<dataDir>/redis`. When it dies it is started again on the
 * same port with the same data (see EMBEDDED_RESTART), so workers, whose
 * clients keep reconnecting, serve again by themselves.
 */
export async function startEmbeddedRedis(
  dataDir: string,
  logger: Logger,
  clock: Clock = systemClock,
): Promise<EmbeddedRedis> {
  const dir = join(dataDir, "redis");
  await mkdir(dir, { recursive: true });
  await refuseIfInUse(join(dir, "redis.pid"), dir);
  if (!(await commandExists("redis-server"))) throw new RedisServerMissingError();
  const port = await freePort();
  const args = [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--protected-mode",
    "yes",
    "--dir",
    dir,
    "--appendonly",
    "yes",
    "--appendfsync",
    "everysec",
    "--save",
    "",
    "--pidfile",
    join(dir, "redis.pid"),
    "--daemonize",
    "no",
    "--logfile",
    "",
  ];
  const backoff = new RestartBackoff(EMBEDDED_RESTART);
  let current = await spawnRedisServer(args);
  logger.info({ port, dir, redisPid: current.pid }, "embedded redis-server started");
  let stopping = false;
  let cancelRestart: (() => void) | undefined;
  let restarting: Promise<void> | undefined;

  const scheduleRestart = (delayMs: number): void => {
    cancelRestart = clock.setTimer(() => {
      cancelRestart = undefined;
      restarting = restart().finally(() => (restarting = undefined));
    }, delayMs);
  };
  const supervise = (server: RedisServerProcess, startedAt: number): void => {
    void server.exited.then((code) => {
      if (stopping || server !== current) return;
      const livedMs = clock.now() - startedAt;
      const restartInMs = backoff.next(livedMs);
      logger.error(
        { port, redisPid: server.pid, code, livedMs, restartInMs, lastOutput: server.lastOutput() },
        "embedded redis-server exited; restarting it",
      );
      scheduleRestart(restartInMs);
    });
  };
  const restart = async (): Promise<void> => {
    if (stopping) return;
    const startedAt = clock.now();
    let server: RedisServerProcess;
    try {
      server = await spawnRedisServer(args);
    } catch (error) {
      // Its port taken meanwhile, its data unreadable...: keep trying, slower.
      const restartInMs = backoff.next(clock.now() - startedAt);
      logger.error(
        { port, error: (error as Error).message, restartInMs },
        "embedded redis-server did not restart; trying again",
      );
      if (!stopping) scheduleRestart(restartInMs);
      return;
    }
    if (stopping) {
      await server.stop();
      return;
    }
    current = server;
    logger.info({ port, dir, redisPid: server.pid }, "embedded redis-server restarted");
    supervise(server, startedAt);
  };
  supervise(current, clock.now());

  let stopped: Promise<void> | undefined;
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    get pid() {
      return current.pid;
    },
    stop: () =>
      (stopped ??= (async () => {
        stopping = true;
        cancelRestart?.();
        await restarting;
        await current.stop();
        logger.info("embedded redis-server stopped");
      })()),
  };
}

export interface RedisServerProcess {
  /** redis-server's own pid, from its start-up line (the shell in between has another). */
  readonly pid: number | undefined;
  /** Resolves when redis-server has exited, stopped or not: its exit status, 128 + n for signal n. */
  readonly exited: Promise<number | null>;
  /** The tail of what it printed, for saying why it died. */
  lastOutput(): string;
  /** Stops it with SIGTERM (it writes its append-only file first); idempotent. */
  stop(): Promise<void>;
}

const OUTPUT_TAIL_CHARS = 2_000;

/**
 * Runs `redis-server <args>` tied to this process's life (see SUPERVISOR)
 * and resolves once it accepts connections.
 */
export async function spawnRedisServer(args: readonly string[]): Promise<RedisServerProcess> {
  // Its own session: a Ctrl-C meant for Tollgate must not stop Redis before
  // the workers have finished with it; Tollgate stops it last.
  const child = spawn("sh", ["-c", SUPERVISOR, "sh", ...args], { stdio: ["pipe", "pipe", "pipe"], detached: true });
  let output = "";
  let pid: number | undefined;
  let ready = false;
  let onReady = (): void => {};
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  // Our end of its stdin is only ever closed; once the shell is gone, close it too.
  child.stdin.on("error", () => {});
  void exited.then(() => child.stdin.end());
  const onOutput = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-2 * OUTPUT_TAIL_CHARS);
    pid ??= Number(/\bpid=(\d+)/.exec(output)?.[1]) || undefined;
    if (!ready && output.includes("Ready to accept connections")) {
      ready = true;
      onReady();
    }
  };
  child.stdout.on("data", onOutput);
  child.stderr.on("data", onOutput);
  await new Promise<void>((resolve, reject) => {
    onReady = resolve;
    void exited.then((code) =>
      reject(new Error(`redis-server exited (code ${code}) before it was ready:\n${output.slice(-OUTPUT_TAIL_CHARS)}`)),
    );
  });
  let stopping: Promise<void> | undefined;
  return {
    pid,
    exited,
    lastOutput: () => output.slice(-OUTPUT_TAIL_CHARS),
    stop: () =>
      (stopping ??= (async () => {
        child.stdin.end();
        await exited;
      })()),
  };
}

async function refuseIfInUse(pidFile: string, dir: string): Promise<void> {
  const pid = Number((await readFile(pidFile, "utf8").catch(() => "")).trim());
  if (!Number.isInteger(pid) || pid <= 0) return;
  const command = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
  if (command.includes("redis-server")) {
    throw new Error(
      `another embedded redis-server (pid ${pid}) is using ${dir}; stop that Tollgate or choose another --data-dir`,
    );
  }
}

async function commandExists(command: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = spawn(command, ["--version"], { stdio: "ignore" });
    probe.once("error", () => resolve(false));
    probe.once("exit", (code) => resolve(code === 0));
  });
}

/** A port free on loopback now (another process could still take it first). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}
