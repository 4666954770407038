import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Cluster } from "ioredis";
import { freePort, spawnRedisServer, type RedisServerProcess } from "../../src/redis/embedded-redis.js";
import { pollUntil } from "./expect.js";
import { forget, nodeCommand, removeAtExit, replicaSynced } from "./redis-nodes.js";

const run = promisify(execFile);

export interface ClusterOptions {
  /** Masters (each gets a third of the slots with 3). */
  readonly masters?: number;
  /**
   * Replicas per master. With TOLLGATE_REPLICA_ACKS=1, a master whose only
   * replica was promoted has none left to WAIT for: give it 2 to keep
   * acknowledging writes after a failover.
   */
  readonly replicasPerMaster?: number;
  /** cluster-node-timeout: how long a silent node takes to be marked failing. */
  readonly nodeTimeoutMs?: number;
}

/** One node as the cluster sees it now (CLUSTER NODES). */
export interface ClusterNodeState {
  readonly port: number;
  readonly id: string;
  readonly role: "master" | "replica";
  /** For a replica, its master's port (undefined if its master is unknown). */
  readonly masterPort: number | undefined;
  /** Slot ranges [first, last] a master serves. */
  readonly slots: readonly (readonly [number, number])[];
  /** Marked fail (or pfail) by the node asked, or not connected. */
  readonly failing: boolean;
}

export interface Failover {
  /** The port of the replica now serving the killed master's slots. */
  readonly newMasterPort: number;
  /** From the kill to the cluster being whole again, as the harness saw it. */
  readonly ms: number;
}

interface Node {
  readonly port: number;
  readonly busPort: number;
  readonly dir: string;
  server: RedisServerProcess;
  killed: boolean;
}

/**
 * A private Redis Cluster on loopback, made of plain `redis-server`s on free
 * ports (3 masters with a replica each by default), joined with
 * `redis-cli --cluster create`, for one test file. Each node's data (append-
 * only file, nodes.conf) lives in a temp directory removed by stop(), or at
 * exit; every node dies with the test process, however that ends.
 */
export class TestRedisCluster {
  private killedAt: { readonly port: number; readonly state: ClusterNodeState; readonly at: number } | undefined;

  private constructor(
    private readonly nodes: readonly Node[],
    private readonly seeds: readonly number[],
    readonly dir: string,
  ) {}

  static async start(options: ClusterOptions = {}): Promise<TestRedisCluster> {
    const masters = options.masters ?? 3;
    const replicasPerMaster = options.replicasPerMaster ?? 1;
    const nodeTimeoutMs = options.nodeTimeoutMs ?? 1_000;
    const dir = await mkdtemp(join(tmpdir(), "tollgate-test-cluster-"));
    removeAtExit(dir);
    const count = masters * (1 + replicasPerMaster);
    const ports: { port: number; busPort: number }[] = [];
    const taken = new Set<number>();
    while (ports.length < count) {
      const port = await freePort();
      const busPort = await freePort();
      if (port === busPort || taken.has(port) || taken.has(busPort)) continue;
      taken.add(port).add(busPort);
      ports.push({ port, busPort });
    }
    const started = await Promise.allSettled(
      ports.map(async ({ port, busPort }) => {
        const nodeDir = join(dir, String(port));
        await mkdir(nodeDir);
        const server = await spawnRedisServer(nodeArgs(port, busPort, nodeDir, nodeTimeoutMs));
        return { port, busPort, dir: nodeDir, server, killed: false } satisfies Node;
      }),
    );
    const nodes = started.flatMap((result) => (result.status === "fulfilled" ? [result.value] : []));
    const cluster = new TestRedisCluster(
      nodes,
      nodes.slice(0, masters).map((node) => node.port),
      dir,
    );
    try {
      const failed = started.find((result) => result.status === "rejected");
      if (failed) throw failed.reason;
      // The first `masters` addresses become masters; redis-cli spreads the
      // replicas over them (all on one host, so it warns, harmlessly).
      await run(
        "redis-cli",
        [
          "--cluster",
          "create",
          ...nodes.map((node) => `127.0.0.1:${node.port}`),
          "--cluster-replicas",
          String(replicasPerMaster),
          "--cluster-yes",
        ],
        { timeout: 30_000 },
      );
      await cluster.waitUntilWhole(30_000);
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  /** The URL Tollgate takes: the first masters as seeds. */
  get url(): string {
    return `redis+cluster://${this.seeds.map((port) => `127.0.0.1:${port}`).join(",")}`;
  }

  /** Every node's port, killed ones included. */
  get ports(): number[] {
    return this.nodes.map((node) => node.port);
  }

  /** redis-server pids of the nodes still running. */
  get pids(): number[] {
    return this.nodes.flatMap((node) => (node.killed || node.server.pid === undefined ? [] : [node.server.pid]));
  }

  /** Every node's role, master and slots as a live node sees them now (CLUSTER NODES). */
  async roles(): Promise<ClusterNodeState[]> {
    const text = String(await this.onLiveNode("CLUSTER", "NODES"));
    const lines = text.split("\n").filter((line) => line.trim() !== "");
    const entries = lines.map((line) => line.split(" "));
    const portById = new Map(entries.map(([id = "", address = ""]) => [id, portOf(address)]));
    return entries.map(([id = "", address = "", flags = "", masterId = "-", , , , link = "", ...slots]) => ({
      port: portOf(address),
      id,
      role: flags.split(",").includes("master") ? "master" : "replica",
      masterPort: masterId === "-" ? undefined : portById.get(masterId),
      slots: slots
        .filter((slot) => !slot.startsWith("["))
        .map((slot) => {
          const [first = "", last = first] = slot.split("-");
          return [Number(first), Number(last)] as const;
        }),
      failing: /\bfail\??\b/.test(flags) || link !== "connected",
    }));
  }

  /** The port of the master serving `slotOrKey` (a slot number, or a key whose slot the cluster computes). */
  async masterOf(slotOrKey: number | string): Promise<number> {
    const slot =
      typeof slotOrKey === "number" ? slotOrKey : Number(await this.onLiveNode("CLUSTER", "KEYSLOT", slotOrKey));
    const owner = (await this.roles()).find(
      (node) =>
        node.role === "master" && !node.failing && node.slots.some(([first, last]) => slot >= first && slot <= last),
    );
    if (!owner) throw new Error(`no live master serves slot ${slot}`);
    return owner.port;
  }

  /** SIGKILLs the master at `port` (no append-only rewrite, no goodbye to the cluster). */
  async killMaster(port: number): Promise<void> {
    const node = this.node(port);
    const state = (await this.roles()).find((n) => n.port === port);
    if (state?.role !== "master") throw new Error(`127.0.0.1:${port} is not a master`);
    if (node.server.pid === undefined) throw new Error(`no pid for the redis-server on ${port}`);
    this.killedAt = { port, state, at: Date.now() };
    process.kill(node.server.pid, "SIGKILL");
    node.killed = true;
    await node.server.exited;
  }

  /**
   * Waits until a replica of the master killed last serves its slots and the
   * cluster is whole again: cluster_state:ok on every live node, and every
   * live replica (the killed master's other replicas now following the new
   * one) linked and synced.
   */
  async waitForFailover(timeoutMs = 30_000): Promise<Failover> {
    const killed = this.killedAt;
    if (!killed) throw new Error("waitForFailover() without killMaster()");
    const newMasterPort = await pollUntil(
      `a replica to take over from 127.0.0.1:${killed.port}`,
      async () => {
        const heir = (await this.roles()).find(
          (node) =>
            node.role === "master" && !node.failing && node.id !== killed.state.id && sameSlots(node, killed.state),
        );
        return heir?.port;
      },
      { timeoutMs, intervalMs: 50 },
    );
    await this.waitUntilWhole(timeoutMs);
    return { newMasterPort, ms: Date.now() - killed.at };
  }

  /** An ioredis Cluster client on this cluster, for the test to use and disconnect. */
  client(): Cluster {
    return new Cluster(
      this.seeds.map((port) => ({ host: "127.0.0.1", port })),
      { redisOptions: { maxRetriesPerRequest: 1 } },
    );
  }

  /** Stops every node (SIGTERM) and removes their data; idempotent. */
  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.server.stop()));
    await rm(this.dir, { recursive: true, force: true });
    forget(this.dir);
  }

  private node(port: number): Node {
    const node = this.nodes.find((n) => n.port === port);
    if (!node) throw new Error(`127.0.0.1:${port} is not a node of this cluster`);
    return node;
  }

  private async onLiveNode(command: string, ...args: string[]): Promise<unknown> {
    let last: unknown;
    for (const node of this.nodes) {
      if (node.killed) continue;
      try {
        return await nodeCommand(node.port, command, ...args);
      } catch (error) {
        last = error;
      }
    }
    throw last ?? new Error("no live node");
  }

  /** cluster_state:ok on every live node, each knowing every node, and every live replica synced. */
  private async waitUntilWhole(timeoutMs: number): Promise<void> {
    const live = this.nodes.filter((node) => !node.killed);
    await pollUntil(
      "cluster_state:ok on every node and every replica synced",
      async () => {
        for (const node of live) {
          const info = String(await nodeCommand(node.port, "CLUSTER", "INFO"));
          if (!info.includes("cluster_state:ok")) return false;
          if (!info.includes(`cluster_known_nodes:${this.nodes.length}\r`)) return false;
        }
        const roles = await this.roles();
        for (const state of roles) {
          if (state.role !== "replica" || this.node(state.port).killed) continue;
          if (!(await replicaSynced(state.port))) return false;
        }
        return true;
      },
      { timeoutMs, intervalMs: 50 },
    );
  }
}

function nodeArgs(port: number, busPort: number, dir: string, nodeTimeoutMs: number): string[] {
  return [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--dir",
    dir,
    "--logfile",
    "",
    "--save",
    "",
    "--appendonly",
    "yes",
    "--cluster-enabled",
    "yes",
    "--cluster-config-file",
    join(dir, "nodes.conf"),
    "--cluster-port",
    String(busPort),
    "--cluster-node-timeout",
    String(nodeTimeoutMs),
    // A replica may take over however long it was cut off: the tests kill
    // masters on a loaded machine, not to test data-age policy.
    "--cluster-replica-validity-factor",
    "0",
    // Replicas sync at once, not after the 5 s wait for more replicas.
    "--repl-diskless-sync-delay",
    "0",
  ];
}

function portOf(address: string): number {
  // "127.0.0.1:7001@17001" (CLUSTER NODES)
  return Number(/:(\d+)/.exec(address)?.[1]);
}

function sameSlots(a: ClusterNodeState, b: ClusterNodeState): boolean {
  if (b.slots.length === 0) return false;
  return JSON.stringify(a.slots) === JSON.stringify(b.slots);
}
