import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { freePort } from "../../src/embedded-redis.js";

/**
 * A private redis-server on a free loopback port, for one test file. Tests
 * never touch a Redis they did not start. stop() and start() let failure
 * tests take it away and bring it back on the same port with the same data.
 */
export class TestRedis {
  private child: ChildProcess | undefined;
  private constructor(
    readonly port: number,
    readonly dir: string,
  ) {}

  static async start(): Promise<TestRedis> {
    const redis = new TestRedis(await freePort(), await mkdtemp(join(tmpdir(), "tollgate-test-redis-")));
    await redis.start();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const child = spawn(
      "redis-server",
      ["--port", String(this.port), "--bind", "127.0.0.1", "--dir", this.dir, "--save", "", "--appendonly", "yes", "--logfile", ""],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    this.child = child;
    let output = "";
    await new Promise<void>((resolve, reject) => {
      child.once("error", (error) => reject(new Error(`cannot start redis-server (is it installed?): ${error.message}`)));
      child.once("exit", (code) => reject(new Error(`redis-server exited with ${code}:\n${output}`)));
      child.stdout!.on("data", (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes("Ready to accept connections")) resolve();
      });
    });
    child.removeAllListeners("exit");
    child.stdout!.removeAllListeners("data");
    child.stdout!.resume();
    child.stderr!.resume();
  }

  /** Stops redis-server (SIGTERM: it writes its append-only file first). */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      child.kill("SIGTERM");
    });
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
