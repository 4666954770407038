import { spawn } from "node:child_process";
import { mkdir, readFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import type { Logger } from "./logger.js";

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
  /** Stops redis-server (it writes its append-only file first); idempotent. */
  stop(): Promise<void>;
}

// The shell in between ties Redis' life to ours: when this process exits,
// however it exits, its end of the pipe closes, `read` returns, and the EXIT
// trap stops Redis cleanly, so a killed Tollgate never leaves an orphan.
const SUPERVISOR = `
redis-server "$@" &
child=$!
trap 'kill -TERM $child 2>/dev/null; wait $child' EXIT
read _ || true
`;

/**
 * Starts a private redis-server: loopback only, a free port, append-only file
 * on, data under `<dataDir>/redis`.
 */
export async function startEmbeddedRedis(dataDir: string, logger: Logger): Promise<EmbeddedRedis> {
  const dir = join(dataDir, "redis");
  await mkdir(dir, { recursive: true });
  await refuseIfInUse(join(dir, "redis.pid"), dir);
  if (!(await commandExists("redis-server"))) throw new RedisServerMissingError();
  const port = await freePort();
  const args = [
    "--port", String(port),
    "--bind", "127.0.0.1",
    "--protected-mode", "yes",
    "--dir", dir,
    "--appendonly", "yes",
    "--appendfsync", "everysec",
    "--save", "",
    "--pidfile", join(dir, "redis.pid"),
    "--daemonize", "no",
    "--logfile", "",
  ];
  const server = await spawnRedisServer(args);
  logger.info({ port, dir }, "embedded redis-server started");
  let stopped: Promise<void> | undefined;
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop: () =>
      (stopped ??= server.stop().then(() => {
        logger.info("embedded redis-server stopped");
      })),
  };
}

export interface RedisServerProcess {
  /** Stops it with SIGTERM (it writes its append-only file first); idempotent. */
  stop(): Promise<void>;
}

/**
 * Runs `redis-server <args>` tied to this process's life (see SUPERVISOR)
 * and resolves once it accepts connections.
 */
export async function spawnRedisServer(args: readonly string[]): Promise<RedisServerProcess> {
  const child = spawn("sh", ["-c", SUPERVISOR, "sh", ...args], { stdio: ["pipe", "pipe", "pipe"] });
  const output: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      output.push(chunk.toString());
      if (output.join("").includes("Ready to accept connections")) resolve();
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    void exited.then((code) =>
      reject(new Error(`redis-server exited (code ${code}) before it was ready:\n${output.join("").slice(-2000)}`)),
    );
  });
  child.stdout.removeAllListeners("data");
  child.stderr.removeAllListeners("data");
  child.stdout.resume();
  child.stderr.resume();
  let stopping: Promise<void> | undefined;
  return {
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
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}
