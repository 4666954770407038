import { rmSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { freePort, spawnRedisServer, type RedisServerProcess } from "../../src/redis/embedded-redis.js";

// Data directories of this test process's Redis servers, removed when it exits.
const directories = new Set<string>();
process.once("exit", () => {
  for (const dir of directories) rmSync(dir, { recursive: true, force: true });
});

/**
 * A private redis-server on a free loopback port, for one test file. Tests
 * never touch a Redis they did not start, and it dies with the test process
 * even when that is killed. stop() and start() let failure
 * tests take it away and bring it back on the same port with the same data.
 */
export class TestRedis {
  private server: RedisServerProcess | undefined;
  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly extraArgs: readonly string[],
  ) {}

  /** `extraArgs` go to redis-server on every start (e.g. `--replicaof 127.0.0.1 <port>`). */
  static async start(extraArgs: readonly string[] = []): Promise<TestRedis> {
    const redis = new TestRedis(await freePort(), await mkdtemp(join(tmpdir(), "tollgate-test-redis-")), extraArgs);
    directories.add(redis.dir);
    await redis.start();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.server = await spawnRedisServer([
      "--port",
      String(this.port),
      "--bind",
      "127.0.0.1",
      "--dir",
      this.dir,
      "--save",
      "",
      "--appendonly",
      "yes",
      "--logfile",
      "",
      ...this.extraArgs,
    ]);
  }

  /** Stops redis-server (SIGTERM: it writes its append-only file first); start() brings it back. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    await server?.stop();
  }

  /** A plain client for inspecting what the server wrote. */
  client(): Redis {
    return new Redis(this.url, { lazyConnect: false, maxRetriesPerRequest: 1 });
  }

  /** Total calls per Redis command so far (INFO commandstats). */
  async commandCalls(): Promise<number> {
    const client = this.client();
    try {
      const info = await client.info("commandstats");
      return [...info.matchAll(/calls=(\d+)/g)].reduce((sum, match) => sum + Number(match[1]), 0);
    } finally {
      client.disconnect();
    }
  }
}
