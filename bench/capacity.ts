// `npm run bench -- --only capacity`: what each operation costs Redis (and
// the serve process tree), on one standalone Redis, for docs/capacity.md.
// `users` new users each Submit once (every task starts now), then each
// Submits once more while the policy's first window (1/30s) is still used,
// so every task queues, due 30 s after the user's first start; then the
// drainers start them as they come due, spread as the first Submits were,
// as a steady queue drains. Each phase is measured on its own (INFO cpu and
// commandstats before and after, the serve tree's CPU from /proc); the
// memory of a queued task is used_memory's growth over the queueing phase,
// and that of what stays after a user is idle is MEMORY USAGE of its keys.
import type { Redis } from "ioredis";
import { createKeys, sumOver } from "../src/redis/keys.js";
import type { LoadGenerator, LoadSpec } from "./loadgen.js";
import { freePort } from "../src/redis/embedded-redis.js";
import {
  commandsBetween,
  commandsRun,
  redisCounters,
  settle,
  SLOTS,
  sleep,
  startRedis,
  startTollgate,
  submittedByDisposition,
  treeCpuSeconds,
  usedMemory,
  waitFor,
} from "./processes.js";

/** What one operation costs, averaged over `count` of them. */
export interface OperationCost {
  readonly count: number;
  /** Redis CPU, µs. */
  readonly redisUs: number;
  /** Redis commands, inside scripts included. */
  readonly commands: number;
  /** The commands run most, with calls per operation, most first. */
  readonly top: readonly (readonly [string, number])[];
  /** CPU of the serve process tree (primary and workers), µs. */
  readonly serverUs: number;
  /** Submits answered started and queued meanwhile (none for a claim). */
  readonly started: number;
  readonly queuedNow: number;
}

export interface CapacityFigures {
  readonly policy: string;
  /** A Submit that starts its task, with the task's run and finish. */
  readonly startNow: OperationCost;
  /** A Submit that queues its task. */
  readonly queued: OperationCost;
  /** A queued task's start (claim), run and finish. */
  readonly claim: OperationCost;
  /** used_memory growth per queued task, one queued task per user, no payload. */
  readonly queuedTaskBytes: number;
  /** MEMORY USAGE of an idle user's stats hash. */
  readonly statsBytes: number;
  /** MEMORY USAGE of a finished task's record (kept a day after it succeeds). */
  readonly finishedTaskBytes: number;
  /** MEMORY USAGE of one window counter (lives a window's duration after a start). */
  readonly windowBytes: number;
  readonly errors: readonly string[];
}

export interface CapacityOptions {
  readonly users: number;
  readonly spec: (target: string, rest: Partial<LoadSpec> & { prefix: string }) => LoadSpec;
  readonly log: (message: string) => void;
}

/** The first window is long enough that every second Submit queues until the whole queueing phase is over. */
const POLICY = "1/30s,20/1h";
const WINDOW_MS = 30_000;
const SAMPLE = 200;
const keys = createKeys();

const queuedTasks = (client: Redis): Promise<number> =>
  sumOver(keys, async (p) => Number((await client.hget(p.totals, "q")) ?? 0));

async function memoryUsage(client: Redis, names: readonly string[]): Promise<number> {
  const sizes = await Promise.all(names.map((name) => client.memory("USAGE", name, "SAMPLES", "0")));
  const known = sizes.filter((size): size is number => typeof size === "number");
  return known.reduce((a, b) => a + b, 0) / known.length;
}

async function scanSample(client: Redis, pattern: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = "0";
  do {
    const [next, names] = await client.scan(cursor, "MATCH", pattern, "COUNT", 1_000);
    cursor = next;
    found.push(...names);
  } while (cursor !== "0" && found.length < SAMPLE);
  return found.slice(0, SAMPLE);
}

export async function benchCapacity(gen: LoadGenerator, options: CapacityOptions): Promise<CapacityFigures> {
  const { users, log } = options;
  const redis = await startRedis();
  const plain = redis.client();
  const errors: string[] = [];
  try {
    const metricsPort = await freePort();
    const tollgate = await startTollgate(redis, {
      TOLLGATE_RATE_LIMITS: POLICY,
      TOLLGATE_METRICS_PORT: String(metricsPort),
      TOLLGATE_CONCURRENCY: String(SLOTS),
    });
    const target = `127.0.0.1:${tollgate.port}`;
    /** Runs `phase`, which says how many operations it did, and what they cost. */
    const cost = async (phase: () => Promise<number>): Promise<OperationCost> => {
      const redis0 = await redisCounters(redis.port);
      const server0 = treeCpuSeconds(tollgate.pid);
      const submitted0 = await submittedByDisposition(metricsPort);
      const count = await phase();
      const server1 = treeCpuSeconds(tollgate.pid);
      const redis1 = await redisCounters(redis.port);
      const submitted1 = await submittedByDisposition(metricsPort);
      const delta = (disposition: string): number =>
        (submitted1.get(disposition) ?? 0) - (submitted0.get(disposition) ?? 0);
      return {
        count,
        started: delta("started"),
        queuedNow: delta("queued"),
        redisUs: (1e6 * (redis1.cpuSeconds - redis0.cpuSeconds)) / count,
        commands: commandsRun(redis0, redis1) / count,
        top: [...commandsBetween(redis0.calls, redis1.calls)]
          .sort((a, b) => b[1] - a[1])
          .slice(0, 8)
          .map(([name, calls]) => [name, calls / count] as const),
        serverUs: (1e6 * (server1 - server0)) / count,
      };
    };
    const submitAll = async (label: string): Promise<number> => {
      const result = await gen.run(options.spec(target, { prefix: "cap-", total: users, maxSeconds: 120 }));
      for (const [code, n] of Object.entries(result.errors)) errors.push(`${label}: ${n} ${code}`);
      return result.ok;
    };
    try {
      log(`capacity: warm-up, then ${users} users each Submit once (start now) under ${POLICY}`);
      await gen.run(options.spec(target, { prefix: "cap-warm-", total: 2_000, maxSeconds: 60 }));
      await settle(plain);
      const startedAt = Date.now();
      const startNow = await cost(async () => {
        const ok = await submitAll("start now");
        if (!(await settle(plain))) errors.push("start now: tasks had not all finished 20 s after");
        return ok;
      });

      log("capacity: each user Submits again (queues behind its used 30 s window)");
      const memory0 = await usedMemory(plain);
      const queued0 = await queuedTasks(plain);
      const queued = await cost(() => submitAll("queued"));
      const memory1 = await usedMemory(plain);
      const queuedCount = (await queuedTasks(plain)) - queued0;
      if (queuedCount !== queued.count) errors.push(`queued: ${queued.count} Submits OK, ${queuedCount} tasks queued`);
      if (Date.now() - startedAt > WINDOW_MS - 3_000) errors.push("queued: the first tasks came due while measured");

      // Idle until just before the first queued task is due: not the claims' cost.
      await sleep(Math.max(0, startedAt + WINDOW_MS - 500 - Date.now()));
      log("capacity: the queued tasks start as they come due");
      const claim = await cost(async () => {
        const drained = await waitFor(
          async () => (await queuedTasks(plain)) === 0 && (await sumOver(keys, (p) => plain.zcard(p.leases))) === 0,
          90_000,
        );
        if (!drained) errors.push("claim: the queue had not drained 90 s after");
        return queuedCount;
      });

      const someUsers = Array.from({ length: SAMPLE }, (_, n) => `cap-${n}`);
      const statsBytes = await memoryUsage(
        plain,
        someUsers.map((user) => keys.forUser(user).stats(user)),
      );
      const finishedTaskBytes = await memoryUsage(plain, await scanSample(plain, "tg:*:t:*"));
      const windowBytes = await memoryUsage(plain, await scanSample(plain, `tg:*:w:${3_600_000}:cap-*`));
      return {
        policy: POLICY,
        startNow,
        queued,
        claim,
        queuedTaskBytes: (memory1 - memory0) / queuedCount,
        statsBytes,
        finishedTaskBytes,
        windowBytes,
        errors,
      };
    } finally {
      await tollgate.stop();
    }
  } finally {
    plain.disconnect();
    await redis.stop();
  }
}
