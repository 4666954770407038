// `tollgate serve` on a Redis Cluster (TOLLGATE_REDIS_URL=redis+cluster://…,
// TOLLGATE_REPLICA_ACKS=1), with users whose partitions lie on all three
// masters: the drain holds the policy, a SIGKILLed Tollgate's tasks all run
// after a restart, two instances hold one policy per user between them, and
// when the master holding some users' partitions is SIGKILLed its replica
// takes over, Submit answers only OK or UNAVAILABLE meanwhile, Tollgate serves
// again by itself, and every acknowledged task runs.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { parseRatePolicy } from "../../src/core/rate-policy.js";
import type { TollgateClient } from "../../src/client/client.js";
import {
  clientFor,
  serveEnv,
  checkFailover,
  stopServe,
  submitThroughFailover,
  unsupportedRedisUrl,
} from "../support/failover.js";
import { checkKillAndRestart } from "../support/kill-restart.js";
import { TestRedisCluster } from "../support/redis-cluster.js";
import { startServeProcess, type ServeProcess } from "../support/serve-process.js";
import { checkStarts, waitUntilAllRan } from "../support/task-log.js";
import { createKeys } from "../../src/redis/keys.js";

const unsupported = unsupportedRedisUrl("redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002");

const KEYS = createKeys();

/** The port of the master holding `userId`'s partition. */
function masterOfUser(cluster: TestRedisCluster, userId: string): Promise<number> {
  return cluster.masterOf(KEYS.forUser(userId).dueUsers);
}

/**
 * `perMaster` user ids `<prefix>-<n>` for each master, so a test's users and
 * their keys are spread over all of them; in master order, round robin.
 */
async function usersOnEveryMaster(cluster: TestRedisCluster, prefix: string, perMaster: number): Promise<string[]> {
  const byMaster = new Map<number, string[]>();
  for (let n = 0; byMaster.size < 3 || [...byMaster.values()].some((u) => u.length < perMaster); n++) {
    const userId = `${prefix}-${n}`;
    const master = await masterOfUser(cluster, userId);
    const users = byMaster.get(master) ?? [];
    if (users.length < perMaster) byMaster.set(master, [...users, userId]);
  }
  const lists = [...byMaster.values()];
  return Array.from(
    { length: perMaster * lists.length },
    (_, i) => lists[i % lists.length]![Math.floor(i / lists.length)]!,
  );
}

/**
 * Submits `perUser` tasks for each of `users` at once, spread over
 * `clients`; waits until all ran (fixture log `log`); returns each user's
 * starts as Redis recorded them (the clock the windows run on) and when the
 * Submits began.
 */
async function drain(
  clients: readonly TollgateClient[],
  users: readonly string[],
  perUser: number,
  log: string,
): Promise<{ submittedAt: number; startsByUser: Map<string, number[]> }> {
  const submittedAt = Date.now();
  const answers = await Promise.all(
    Array.from({ length: users.length * perUser }, async (_, i) => {
      const userId = users[i % users.length]!;
      return { userId, taskId: (await clients[i % clients.length]!.submit({ userId })).taskId };
    }),
  );
  await waitUntilAllRan(
    log,
    answers.map((a) => a.taskId),
    30_000,
  );
  const startsByUser = new Map<string, number[]>();
  for (const { userId, taskId } of answers) {
    const { task } = await clients[0]!.getTask({ taskId });
    startsByUser.set(userId, [...(startsByUser.get(userId) ?? []), timestampMs(task!.startedAt!)]);
  }
  return { submittedAt, startsByUser };
}

describe("tollgate serve on a Redis Cluster", () => {
  let cluster: TestRedisCluster | undefined;
  let dir = "";

  before(async () => {
    if (unsupported) return;
    dir = await mkdtemp(join(tmpdir(), "tollgate-failover-cluster-"));
    // Two replicas per master: with TOLLGATE_REPLICA_ACKS=1 the promoted
    // replica still has one to WAIT for after a failover.
    const startedAt = Date.now();
    cluster = await TestRedisCluster.start({ replicasPerMaster: 2 });
    console.log(`redis cluster (3 masters × 2 replicas) started in ${Date.now() - startedAt} ms`);
  });
  after(async () => {
    await cluster?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("drain: 6 users on 3 masters × 4 tasks under 2/1s start with no window overrun, every acknowledged task runs", async (t) => {
    if (unsupported) return t.skip(unsupported);
    const policyText = "2/1s";
    const env = serveEnv(cluster!.url, dir, "drain", { TOLLGATE_RATE_LIMITS: policyText });
    const server = await startServeProcess(env);
    try {
      const clients = [clientFor(server), clientFor(server)];
      const users = await usersOnEveryMaster(cluster!, "c-drain", 2);
      const { submittedAt, startsByUser } = await drain(clients, users, 4, env.TOLLGATE_FIXTURE_LOG);
      const policy = parseRatePolicy(policyText);
      for (const [userId, starts] of startsByUser) {
        const offsets = starts.map((start) => start - submittedAt).sort((x, y) => x - y);
        console.log(`${userId}: starts at ms ${offsets.join(",")} after the Submits`);
        const check = checkStarts(policy, starts, submittedAt, 2);
        assert.equal(check.violations, 0, `${userId}'s starts ${offsets.join(",")} overran a window`);
      }
    } finally {
      assert.equal(await stopServe(server), 0);
    }
  });

  test("SIGKILL while tasks run, then restart: every acknowledged task runs at least once", async (t) => {
    if (unsupported) return t.skip(unsupported);
    const env = serveEnv(cluster!.url, dir, "restart", { TOLLGATE_RATE_LIMITS: "2/1s", TOLLGATE_LEASE_MS: "600" });
    await checkKillAndRestart(env, await usersOnEveryMaster(cluster!, "c-restart", 1));
  });

  test("two instances on one cluster hold one policy per user between them", async (t) => {
    if (unsupported) return t.skip(unsupported);
    const policyText = "2/1s";
    // Two hosts' worth: data directories of their own, one task log.
    const log = join(dir, "two.log");
    const settings = { TOLLGATE_RATE_LIMITS: policyText, TOLLGATE_WORKERS: "1", TOLLGATE_FIXTURE_LOG: log };
    const a = await startServeProcess(serveEnv(cluster!.url, dir, "two-a", settings));
    let b: ServeProcess | undefined;
    try {
      b = await startServeProcess(serveEnv(cluster!.url, dir, "two-b", settings));
      const users = await usersOnEveryMaster(cluster!, "c-two", 1);
      const { submittedAt, startsByUser } = await drain([clientFor(a), clientFor(b)], users, 6, log);
      const policy = parseRatePolicy(policyText);
      for (const [userId, starts] of startsByUser) {
        const check = checkStarts(policy, starts, submittedAt, 2);
        const offsets = starts.map((start) => start - submittedAt).sort((x, y) => x - y);
        assert.equal(check.violations, 0, `${userId}'s starts ${offsets.join(",")} overran a window`);
      }
    } finally {
      const exits = [await stopServe(a), b && (await stopServe(b))];
      assert.deepEqual(exits, [0, b && 0]);
    }
  });

  // Last: it leaves the cluster one master down.
  test("SIGKILL the master of some users' partitions under load: only OK or UNAVAILABLE, recovery by itself, no acknowledged task lost", async (t) => {
    if (unsupported) return t.skip(unsupported);
    const env = serveEnv(cluster!.url, dir, "failover", { TOLLGATE_RATE_LIMITS: "20/1s" });
    const server = await startServeProcess(env);
    try {
      // Users on every master; the victim holds the first one's partition.
      const users = await usersOnEveryMaster(cluster!, "c-fail", 2);
      const victim = await masterOfUser(cluster!, users[0]!);
      const run = await submitThroughFailover([clientFor(server), clientFor(server)], users, async () => {
        await cluster!.killMaster(victim);
        const failover = await cluster!.waitForFailover();
        console.log(`cluster: 127.0.0.1:${failover.newMasterPort} replaced 127.0.0.1:${victim} in ${failover.ms} ms`);
      });
      await checkFailover("cluster", run, server, env.TOLLGATE_FIXTURE_LOG);
    } finally {
      assert.equal(await stopServe(server), 0);
    }
  });
});
