import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { SUPERVISOR, freePort, spawnRedisServer, type RedisServerProcess } from "../../src/redis/embedded-redis.js";
import { pollUntil } from "./expect.js";
import { forget, nodeCommand, onlineReplicas, removeAtExit, replicaSynced } from "./redis-nodes.js";

export interface SentinelOptions {
  /** The master name the sentinels monitor (the URL's path). */
  readonly name?: string;
  /**
   * Replicas of the master. With TOLLGATE_REPLICA_ACKS=1 the promoted
   * replica needs one of its own to WAIT for: give it 2 to keep
   * acknowledging writes after a failover.
   */
  readonly replicas?: number;
  /** down-after-milliseconds: how long a silent master takes to be subjectively down. */
  readonly downAfterMs?: number;
  /** failover-timeout: a failed failover is retried after twice this. */
  readonly failoverTimeoutMs?: number;
}

export interface SentinelFailover {
  /** The port of the replica promoted to master. */
  readonly newMasterPort: number;
  /** From the kill to the sentinels naming the new master and it (and its replicas) ready. */
  readonly ms: number;
}

interface DataNode {
  readonly port: number;
  server: RedisServerProcess;
  killed: boolean;
}

const SENTINELS = 3;
const QUORUM = 2;

/**
 * A private Redis behind Sentinel on loopback: one master, its replicas
 * (`--replicaof`, one by default) and three sentinels (quorum 2), plain
 * `redis-server`s on free ports, for one test file. Data and the sentinels'
 * config files live in a temp directory removed by stop(), or at exit; every
 * process dies with the test process, however that ends.
 */
export class TestRedisSentinel {
  private killedAt: { readonly port: number; readonly at: number } | undefined;

  private constructor(
    readonly name: string,
    private readonly data: DataNode[],
    private readonly sentinels: SentinelProcess[],
    readonly dir: string,
  ) {}

  static async start(options: SentinelOptions = {}): Promise<TestRedisSentinel> {
    const name = options.name ?? "tollgate";
    const replicas = options.replicas ?? 1;
    const dir = await mkdtemp(join(tmpdir(), "tollgate-test-sentinel-"));
    removeAtExit(dir);
    const harness = new TestRedisSentinel(name, [], [], dir);
    try {
      const ports = await distinctFreePorts(1 + replicas + SENTINELS);
      const [masterPort = 0, ...rest] = ports;
      const replicaPorts = rest.slice(0, replicas);
      const sentinelPorts = rest.slice(replicas);
      await harness.startData(masterPort, []);
      await Promise.all(
        replicaPorts.map((port) => harness.startData(port, ["--replicaof", "127.0.0.1", String(masterPort)])),
      );
      await Promise.all(
        sentinelPorts.map(async (port) => {
          const config = join(dir, `sentinel-${port}.conf`);
          await writeFile(config, sentinelConfig(port, dir, name, masterPort, options));
          harness.sentinels.push(await spawnSentinel(config));
        }),
      );
      // The sentinels find the replicas through the master's INFO and one
      // another through hello messages (every 2 s): until each knows all of
      // them, a failover could not reach its quorum.
      await pollUntil(
        "every replica synced and every sentinel knowing the master, its replicas and the other sentinels",
        async () => {
          for (const port of replicaPorts) if (!(await replicaSynced(port))) return false;
          for (const sentinel of harness.sentinels) {
            const state = await sentinelMaster(sentinel.port, name);
            if (state.get("flags") !== "master" || state.get("port") !== String(masterPort)) return false;
            if (state.get("num-slaves") !== String(replicas)) return false;
            if (state.get("num-other-sentinels") !== String(SENTINELS - 1)) return false;
          }
          return true;
        },
        { timeoutMs: 30_000, intervalMs: 50 },
      );
    } catch (error) {
      await harness.stop();
      throw error;
    }
    return harness;
  }

  /** The URL Tollgate takes: every sentinel, then the master's name. */
  get url(): string {
    return `redis+sentinel://${this.sentinelPorts.map((port) => `127.0.0.1:${port}`).join(",")}/${this.name}`;
  }

  get sentinelPorts(): number[] {
    return this.sentinels.map((sentinel) => sentinel.port);
  }

  /** Ports of the master and replicas, killed ones included. */
  get dataPorts(): number[] {
    return this.data.map((node) => node.port);
  }

  /** redis-server pids of the processes still running, sentinels included. */
  get pids(): number[] {
    return [
      ...this.data.flatMap((node) => (node.killed || node.server.pid === undefined ? [] : [node.server.pid])),
      ...this.sentinels.flatMap((sentinel) => (sentinel.pid === undefined ? [] : [sentinel.pid])),
    ];
  }

  /** The master's port as the sentinels name it now (SENTINEL get-master-addr-by-name). */
  async masterPort(): Promise<number> {
    let last: unknown;
    for (const port of this.sentinelPorts) {
      try {
        const [, masterPort] = (await nodeCommand(port, "SENTINEL", "get-master-addr-by-name", this.name)) as string[];
        return Number(masterPort);
      } catch (error) {
        last = error;
      }
    }
    throw last;
  }

  /** SIGKILLs the current master; returns its port. */
  async killMaster(): Promise<number> {
    const port = await this.masterPort();
    const node = this.data.find((n) => n.port === port);
    if (!node || node.killed || node.server.pid === undefined) throw new Error(`no live master on ${port}`);
    this.killedAt = { port, at: Date.now() };
    process.kill(node.server.pid, "SIGKILL");
    node.killed = true;
    await node.server.exited;
    return port;
  }

  /**
   * Waits until every sentinel names another master than the one killed
   * last, that master answers ROLE master, and the other live replicas
   * follow it (online).
   */
  async waitForFailover(timeoutMs = 30_000): Promise<SentinelFailover> {
    const killed = this.killedAt;
    if (!killed) throw new Error("waitForFailover() without killMaster()");
    const liveReplicas = this.data.filter((node) => !node.killed).length - 1;
    const newMasterPort = await pollUntil(
      `the sentinels to promote a replica of 127.0.0.1:${killed.port}`,
      async () => {
        const named = new Set<number>();
        for (const port of this.sentinelPorts) {
          const [, masterPort] = (await nodeCommand(
            port,
            "SENTINEL",
            "get-master-addr-by-name",
            this.name,
          )) as string[];
          named.add(Number(masterPort));
        }
        const [candidate] = named;
        if (named.size !== 1 || candidate === undefined || candidate === killed.port) return undefined;
        const [role] = (await nodeCommand(candidate, "ROLE")) as unknown[];
        if (role !== "master") return undefined;
        return (await onlineReplicas(candidate)) >= liveReplicas ? candidate : undefined;
      },
      { timeoutMs, intervalMs: 50 },
    );
    return { newMasterPort, ms: Date.now() - killed.at };
  }

  /** An ioredis client that asks the sentinels for the master, for the test to use and disconnect. */
  client(): Redis {
    return new Redis({
      sentinels: this.sentinelPorts.map((port) => ({ host: "127.0.0.1", port })),
      name: this.name,
      maxRetriesPerRequest: 1,
    });
  }

  /** Stops the sentinels, then the data nodes (SIGTERM), and removes their files; idempotent. */
  async stop(): Promise<void> {
    await Promise.all(this.sentinels.map((sentinel) => sentinel.stop()));
    await Promise.all(this.data.map((node) => node.server.stop()));
    await rm(this.dir, { recursive: true, force: true });
    forget(this.dir);
  }

  private async startData(port: number, extra: string[]): Promise<void> {
    const nodeDir = join(this.dir, String(port));
    await mkdir(nodeDir);
    const server = await spawnRedisServer([
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--dir",
      nodeDir,
      "--logfile",
      "",
      "--save",
      "",
      "--appendonly",
      "yes",
      // Replicas sync at once, not after the 5 s wait for more replicas.
      "--repl-diskless-sync-delay",
      "0",
      ...extra,
    ]);
    this.data.push({ port, server, killed: false });
  }
}

async function distinctFreePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

function sentinelConfig(port: number, dir: string, name: string, masterPort: number, options: SentinelOptions): string {
  return [
    `port ${port}`,
    "bind 127.0.0.1",
    `dir ${dir}`,
    'logfile ""',
    // Sentinels tell one another (and clients) the address they announce:
    // loopback here, as every process is.
    "sentinel announce-ip 127.0.0.1",
    `sentinel monitor ${name} 127.0.0.1 ${masterPort} ${QUORUM}`,
    `sentinel down-after-milliseconds ${name} ${options.downAfterMs ?? 1_000}`,
    `sentinel failover-timeout ${name} ${options.failoverTimeoutMs ?? 3_000}`,
    `sentinel parallel-syncs ${name} 1`,
    "",
  ].join("\n");
}

async function sentinelMaster(port: number, name: string): Promise<Map<string, string>> {
  const flat = (await nodeCommand(port, "SENTINEL", "MASTER", name)) as string[];
  const fields = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) fields.set(flat[i]!, flat[i + 1]!);
  return fields;
}

interface SentinelProcess {
  readonly port: number;
  readonly pid: number | undefined;
  stop(): Promise<void>;
}

// The sentinel runs under embedded-redis.ts's supervisor: it is stopped
// (SIGTERM) when our end of the shell's stdin closes, so it dies with the test
// process however that ends. spawnRedisServer itself waits for "Ready to
// accept connections", which a 7.0 sentinel never prints.

/** `redis-server <config> --sentinel`, resolved once it monitors its master. */
async function spawnSentinel(config: string): Promise<SentinelProcess> {
  const port = Number(/sentinel-(\d+)\.conf$/.exec(config)?.[1]);
  const child = spawn("sh", ["-c", SUPERVISOR, "sh", config, "--sentinel"], {
    stdio: ["pipe", "pipe", "pipe"],
    detached: true,
  });
  child.stdin.on("error", () => {});
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  void exited.then(() => child.stdin.end());
  let output = "";
  const pid = await new Promise<number | undefined>((resolve, reject) => {
    const look = (chunk: Buffer): void => {
      output = (output + chunk.toString()).slice(-4_000);
      if (output.includes("+monitor master")) resolve(Number(/\bpid=(\d+)/.exec(output)?.[1]) || undefined);
    };
    child.stdout.on("data", look);
    child.stderr.on("data", look);
    void exited.then(() => reject(new Error(`sentinel on ${port} exited before it was ready:\n${output}`)));
  });
  // Drain its output from now on, so a full pipe never blocks it.
  child.stdout.removeAllListeners("data").resume();
  child.stderr.removeAllListeners("data").resume();
  let stopping: Promise<void> | undefined;
  return {
    port,
    pid,
    stop: () =>
      (stopping ??= (async () => {
        child.stdin.end();
        await exited;
      })()),
  };
}
