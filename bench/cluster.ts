// `npm run bench -- --only cluster`: Tollgate on a 3-master Redis Cluster
// beside Tollgate on one standalone Redis, in the same run on the same
// machine, under the same load generator: Submits per second, the Redis CPU
// and commands each Submit costs (per master, from INFO before and after),
// how evenly partitions and users spread over the masters, and a drain on
// each. The Cluster has no replicas, as the standalone Redis has none, so
// the two differ only in being split three ways; both write an append-only
// file. run.ts prints the figures.
import { Redis } from "ioredis";
import { freePort } from "../src/redis/embedded-redis.js";
import { createKeys } from "../src/redis/keys.js";
import { partitionOf } from "../src/redis/partitions.js";
import { TestRedisCluster } from "../test/support/redis-cluster.js";
import type { TestRedis } from "../test/support/redis.js";
import { benchDrain, type DrainFigures, type DrainRedis } from "./drain.js";
import type { LoadGenerator, LoadResult, LoadSpec } from "./loadgen.js";
import {
  commandsRun,
  redisCounters,
  settle,
  startRedis,
  SLOTS,
  startTollgate,
  submittedByDisposition,
  sum,
  treeCpuSeconds,
  type RedisCounters,
  type TollgateServer,
} from "./processes.js";

/** One load run on one side, with what it cost. */
export interface Sample {
  readonly result: LoadResult;
  /** CPU of the serve process tree per OK Submit, µs. */
  readonly serverUs: number;
  /** Redis CPU per OK Submit on each master (one for standalone), µs. */
  readonly redisUs: readonly number[];
  /** Redis commands per OK Submit, inside scripts included, over all masters. */
  readonly commands: number;
  /** Share of the Submits answered "started" (the rest queued: no free slot). */
  readonly startedShare: number;
}

/** A master of the Cluster and its share of Tollgate's data. */
export interface MasterShare {
  readonly port: number;
  readonly partitions: number;
  /** Users the bench submitted for whose partition this master serves the slot. */
  readonly users: number;
  /** Users' stats hashes found on the master (SCAN), to check `users` against. */
  readonly stored: number;
}

export interface ClusterFigures {
  /** One Sample per round, in order. */
  readonly standalone: readonly Sample[];
  readonly cluster: readonly Sample[];
  /** In the order of `cluster[i].redisUs`. */
  readonly masters: readonly MasterShare[];
  readonly drainStandalone: DrainFigures;
  readonly drainCluster: DrainFigures;
}

export interface ClusterBenchOptions {
  readonly rounds: number;
  readonly seconds: number;
  readonly warmupSeconds: number;
  /** A LoadSpec for `target` with the bench's concurrency and connections. */
  readonly spec: (target: string, rest: Partial<LoadSpec> & { prefix: string }) => LoadSpec;
  readonly drainUsers: number;
  readonly drainPolicy: string;
  readonly log: (message: string) => void;
}

interface Side {
  readonly name: string;
  /** Ports of the masters, in a fixed order. */
  readonly masters: readonly number[];
  readonly client: Redis | TestClusterClient;
  readonly tollgate: TollgateServer;
  readonly metricsPort: number;
  readonly target: string;
  /** Prefix and count of every user id submitted to it (a user per Submit). */
  readonly users: { prefix: string; count: number }[];
}

type TestClusterClient = ReturnType<TestRedisCluster["client"]>;

const keys = createKeys();

async function countersOf(ports: readonly number[]): Promise<RedisCounters[]> {
  return Promise.all(ports.map(redisCounters));
}

async function measure(gen: LoadGenerator, side: Side, load: LoadSpec): Promise<Sample> {
  const before = await countersOf(side.masters);
  const server0 = treeCpuSeconds(side.tollgate.pid);
  const submitted0 = await submittedByDisposition(side.metricsPort);
  const result = await gen.run(load);
  side.users.push({ prefix: load.prefix, count: result.count });
  // A started task's run and finish belong to its Submit.
  if (!(await settle(side.client))) throw new Error(`cluster bench: ${side.name}'s tasks did not finish`);
  const after = await countersOf(side.masters);
  const server1 = treeCpuSeconds(side.tollgate.pid);
  const submitted1 = await submittedByDisposition(side.metricsPort);
  const delta = (disposition: string): number =>
    (submitted1.get(disposition) ?? 0) - (submitted0.get(disposition) ?? 0);
  const per = (amount: number): number => amount / result.ok;
  return {
    result,
    serverUs: per(1e6 * (server1 - server0)),
    redisUs: after.map((a, i) => per(1e6 * (a.cpuSeconds - before[i]!.cpuSeconds))),
    commands: per(sum(after.map((a, i) => commandsRun(before[i]!, a)))),
    startedShare: delta("started") / (delta("started") + delta("queued")),
  };
}

/** Users of each master: each submitted id's partition, that partition's slot (CLUSTER KEYSLOT), the slot's master. */
async function shares(cluster: TestRedisCluster, side: Side): Promise<MasterShare[]> {
  const masterOfPartition = await Promise.all(keys.all.map((p) => cluster.masterOf(p.dueUsers)));
  const usersOfPartition = new Array<number>(keys.partitions).fill(0);
  for (const { prefix, count } of side.users)
    for (let n = 0; n < count; n++) usersOfPartition[partitionOf(`${prefix}${n}`, keys.partitions)]!++;
  return Promise.all(
    side.masters.map(async (port) => {
      const mine = keys.all.filter((_, p) => masterOfPartition[p] === port).map((p) => p.partition);
      return {
        port,
        partitions: mine.length,
        users: sum(mine.map((p) => usersOfPartition[p]!)),
        stored: await countKeys(port, "tg:*:u:*"),
      };
    }),
  );
}

async function countKeys(port: number, pattern: string): Promise<number> {
  const client = new Redis({ host: "127.0.0.1", port, maxRetriesPerRequest: 1 });
  try {
    let count = 0;
    let cursor = "0";
    do {
      const [next, found] = await client.scan(cursor, "MATCH", pattern, "COUNT", 10_000);
      cursor = next;
      count += found.length;
    } while (cursor !== "0");
    return count;
  } finally {
    client.disconnect();
  }
}

export async function benchCluster(gen: LoadGenerator, options: ClusterBenchOptions): Promise<ClusterFigures> {
  const { log } = options;
  let standalone: TestRedis | undefined;
  let cluster: TestRedisCluster | undefined;
  const sides: Side[] = [];
  const servers: TollgateServer[] = [];
  try {
    log("cluster: a standalone redis-server and a 3-master Cluster (no replicas), tollgate serve on each");
    [standalone, cluster] = await Promise.all([startRedis(), TestRedisCluster.start({ replicasPerMaster: 0 })]);
    const masters = (await cluster.roles())
      .filter((node) => node.role === "master")
      .map((node) => node.port)
      .sort((a, b) => a - b);
    for (const [name, redis, ports, client] of [
      ["standalone", standalone, [standalone.port], standalone.client()],
      ["cluster", cluster, masters, cluster.client()],
    ] as const) {
      const metricsPort = await freePort();
      const tollgate = await startTollgate(redis, {
        TOLLGATE_METRICS_PORT: String(metricsPort),
        TOLLGATE_CONCURRENCY: String(SLOTS),
      });
      servers.push(tollgate);
      sides.push({
        name,
        masters: ports,
        client,
        tollgate,
        metricsPort,
        target: `127.0.0.1:${tollgate.port}`,
        users: [],
      });
    }
    for (const side of sides) {
      const warm = options.spec(side.target, { prefix: "cl-warm-", durationSeconds: options.warmupSeconds });
      side.users.push({ prefix: warm.prefix, count: (await gen.run(warm)).count });
      await settle(side.client);
    }
    const samples = new Map<string, Sample[]>(sides.map((side) => [side.name, []]));
    for (let round = 1; round <= options.rounds; round++) {
      for (const side of sides) {
        log(`cluster: round ${round}, ${side.name}`);
        const load = options.spec(side.target, { prefix: `cl-${round}-`, durationSeconds: options.seconds });
        samples.get(side.name)!.push(await measure(gen, side, load));
      }
    }
    const masterShares = await shares(cluster, sides[1]!);
    // The drains' servers are the only ones left running.
    for (const server of servers.splice(0)) await server.stop();

    log(`cluster: drain, ${options.drainUsers} users x 3 tasks under ${options.drainPolicy}, standalone then Cluster`);
    const drainStandalone = await benchDrain(options.drainUsers, 3, options.drainPolicy, 256);
    const onCluster: DrainRedis = {
      url: cluster.url,
      client: () => cluster!.client(),
      commandCalls: async () => sum((await countersOf(masters)).map((c) => sum(c.calls.values()))),
    };
    const drainCluster = await benchDrain(options.drainUsers, 3, options.drainPolicy, 256, onCluster);
    return {
      standalone: samples.get("standalone")!,
      cluster: samples.get("cluster")!,
      masters: masterShares,
      drainStandalone,
      drainCluster,
    };
  } finally {
    for (const side of sides) side.client.disconnect();
    for (const server of servers) await server.stop();
    await cluster?.stop();
    await standalone?.stop();
  }
}
