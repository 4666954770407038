import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import { TestRedis } from "./redis.js";
import { serveSettings, startServeProcess, type ServeProcess } from "./serve-process.js";
import { startTestServer, type TestServer } from "./server.js";

export interface PrivateRedis {
  readonly redis: TestRedis;
  /** A scratch directory for the file's logs and data. */
  readonly dir: string;
}

export interface TestServerOnRedis extends PrivateRedis {
  /** An in-process server on port 0 and its generated client. */
  readonly tollgate: TestServer;
}

export interface ServedRedis extends PrivateRedis {
  /** The running `tollgate serve`. */
  readonly server: ServeProcess;
  /** "127.0.0.1:<port>" of its gRPC port. */
  readonly addr: string;
}

/**
 * A private Redis and a scratch directory for one test file: started before
 * its tests, removed after them. Read the fields inside tests, not at load
 * nor in a root-level hook of the file's own: Node 20 starts root-level hooks
 * as they are registered, so such a hook would not wait for these.
 */
export function usePrivateRedis(name: string): PrivateRedis {
  return useFixture(name);
}

/**
 * The same, plus `tollgate serve` (2 workers) on that Redis, as a user runs
 * it, with these settings over the defaults; stopped with SIGTERM after the
 * file's tests, before its Redis.
 */
export function useServeProcess(name: string, env: Record<string, string> = {}): ServedRedis {
  return useFixture(name, { process: env });
}

/**
 * The same, plus a real server in this process (startTestServer) with these
 * settings; closed after the tests, before its Redis.
 */
export function useTestServer(name: string, env: Record<string, string> = {}): TestServerOnRedis {
  return useFixture(name, { inProcess: env });
}

type Serve = { readonly process: Record<string, string> } | { readonly inProcess: Record<string, string> };

function useFixture(name: string, serve?: Serve): ServedRedis & TestServerOnRedis {
  const context: { redis?: TestRedis; dir?: string; server?: ServeProcess; tollgate?: TestServer } = {};
  before(async () => {
    context.redis = await TestRedis.start();
    context.dir = await mkdtemp(join(tmpdir(), `tollgate-${name}-`));
    if (serve === undefined) return;
    if ("inProcess" in serve) {
      context.tollgate = await startTestServer(context.redis.url, serve.inProcess);
      return;
    }
    context.server = await startServeProcess({
      ...serveSettings(context.redis.url, context.dir),
      ...serve.process,
    });
  });
  after(async () => {
    // The server first, while its Redis still answers.
    await context.tollgate?.close();
    context.server?.child.kill("SIGTERM");
    await context.server?.exited;
    await context.redis?.stop();
    if (context.dir) await rm(context.dir, { recursive: true, force: true });
  });
  return {
    get redis() {
      return context.redis!;
    },
    get dir() {
      return context.dir!;
    },
    get tollgate() {
      return context.tollgate!;
    },
    get server() {
      return context.server!;
    },
    get addr() {
      return `127.0.0.1:${context.server!.port}`;
    },
  };
}
