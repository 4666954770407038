import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { freePort } from "../../src/redis/embedded-redis.js";

const BIN = fileURLToPath(new URL("../../bin/tollgate.js", import.meta.url));

export interface ServeProcess {
  readonly child: ChildProcess;
  readonly port: number;
  /** Everything it printed so far. */
  output(): string;
  /** Resolves with the exit code (or the signal's name). */
  readonly exited: Promise<number | string>;
}

/**
 * The settings every test's `tollgate serve` starts from: its Redis and data
 * directory, loopback, a free port, 2 workers. Spread the test's own after it.
 */
export function serveSettings(redisUrl: string, dataDir: string): Record<string, string> {
  return {
    TOLLGATE_REDIS_URL: redisUrl,
    TOLLGATE_HOST: "127.0.0.1",
    TOLLGATE_PORT: "0",
    TOLLGATE_WORKERS: "2",
    TOLLGATE_DATA_DIR: dataDir,
  };
}

/**
 * `tollgate serve` as a user runs it, in its own process, with these
 * environment variables over the test's; resolves once it is serving. `bin`:
 * another copy's bin/tollgate.js.
 */
export async function startServeProcess(
  env: Record<string, string>,
  timeoutMs = 30_000,
  bin = BIN,
): Promise<ServeProcess> {
  const child = spawn(process.execPath, [bin, "serve"], {
    env: { ...process.env, TOLLGATE_LOG_LEVEL: "info", TOLLGATE_METRICS_PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | string>((resolve) =>
    child.once("exit", (code, signal) => resolve(code ?? signal ?? "unknown")),
  );
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      // Not serving in time: stop it, so nothing outlives the test.
      child.kill("SIGKILL");
      reject(new Error(`tollgate serve did not start:\n${output}`));
    }, timeoutMs);
    const look = (): void => {
      const match = /"port":(\d+)[^\n]*"msg":"serving"/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    };
    child.stdout!.on("data", look);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`tollgate serve exited (${code}) before serving:\n${output}`));
    });
  });
  return { child, port, output: () => output, exited };
}

/**
 * `tollgate serve` with its HTTP port (the dashboard, /metrics, the API for
 * browsers) on a port free a moment ago; tried again on another when some
 * other process took it first (other tests open sockets meanwhile).
 */
export async function startServeWithHttpPort(
  env: Record<string, string>,
): Promise<{ readonly serve: ServeProcess; readonly httpPort: number }> {
  for (let attempt = 1; ; attempt++) {
    const httpPort = await freePort();
    try {
      return { serve: await startServeProcess({ ...env, TOLLGATE_METRICS_PORT: String(httpPort) }), httpPort };
    } catch (error) {
      if (attempt >= 3 || !/EADDRINUSE/.test((error as Error).message)) throw error;
    }
  }
}
