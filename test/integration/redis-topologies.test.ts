// The Redis Cluster and Sentinel harnesses themselves (test/support/redis-
// cluster.ts, redis-sentinel.ts): each topology starts from plain
// redis-server processes, ioredis reads and writes through it, a SIGKILLed
// master is replaced by its replica with acknowledged writes kept, and stop()
// leaves no redis-server behind.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Cluster, Redis } from "ioredis";
import { pollUntil } from "../support/expect.js";
import { TestRedisCluster } from "../support/redis-cluster.js";
import { redisProcessesOn } from "../support/redis-nodes.js";
import { TestRedisSentinel } from "../support/redis-sentinel.js";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A client that reports nothing on its own while a node is down: the test looks at results. */
function quiet<T extends Redis | Cluster>(client: T): T {
  client.on("error", () => {});
  return client;
}

describe("Redis Cluster harness: 3 masters, 3 replicas", () => {
  let cluster: TestRedisCluster | undefined;
  let client: Cluster | undefined;
  const keys = Array.from({ length: 30 }, (_, i) => `key-${i}`);

  before(async () => {
    const startedAt = Date.now();
    cluster = await TestRedisCluster.start();
    console.log(`redis cluster (3 masters + 3 replicas) started in ${Date.now() - startedAt} ms: ${cluster.url}`);
    client = quiet(cluster.client());
  });
  after(async () => {
    client?.disconnect();
    await cluster?.stop();
  });

  test("it starts as 3 masters covering every slot, each with a replica", async () => {
    const roles = await cluster!.roles();
    const masters = roles.filter((node) => node.role === "master");
    assert.equal(masters.length, 3);
    assert.equal(roles.length, 6);
    const covered = masters.flatMap((node) => node.slots).reduce((sum, [first, last]) => sum + last - first + 1, 0);
    assert.equal(covered, 16_384);
    for (const master of masters) {
      assert.equal(roles.filter((node) => node.masterPort === master.port).length, 1, `${master.port}'s replicas`);
    }
    assert.match(cluster!.url, /^redis\+cluster:\/\/127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,127\.0\.0\.1:\d+$/);
    const tg = await cluster!.masterOf("{tg}:anything");
    assert.equal(await cluster!.masterOf("{tg}"), tg, "keys sharing the {tg} tag share a master");
  });

  test("ioredis Cluster writes and reads keys spread over every master", async () => {
    for (const key of keys) await client!.set(key, `value of ${key}`);
    for (const key of keys) assert.equal(await client!.get(key), `value of ${key}`);
    const owners = new Set(await Promise.all(keys.map((key) => cluster!.masterOf(key))));
    assert.equal(owners.size, 3, "30 keys touch every master");
  });

  test("SIGKILL the master of {tg}: its replica takes over and keeps what the master acknowledged", async () => {
    const key = "{tg}:survivor";
    const victim = await cluster!.masterOf(key);
    const [replica] = (await cluster!.roles()).filter((node) => node.masterPort === victim);
    await client!.set(key, "kept");
    // WAIT on the key's own master: the write reached its replica.
    const acked = await client!.call("WAIT", "1", "2000");
    assert.equal(acked, 1);
    await cluster!.killMaster(victim);
    const failover = await cluster!.waitForFailover();
    console.log(`cluster failover: ${failover.ms} ms from SIGKILL to a whole cluster`);
    assert.equal(failover.newMasterPort, replica!.port, "the killed master's replica took over");
    assert.equal(await cluster!.masterOf(key), replica!.port);
    // node timeout 1 s, then the vote: a few seconds idle.
    assert.ok(failover.ms <= 20_000, `failover took ${failover.ms} ms`);
    await pollUntil("the client to read through the new master", async () => (await client!.get(key)) === "kept", {
      timeoutMs: 15_000,
    });
    for (const other of keys) assert.equal(await client!.get(other), `value of ${other}`);
  });

  test("stop() leaves no redis-server behind", async () => {
    const pids = cluster!.pids;
    assert.equal(pids.length, 5, "five nodes still run");
    client!.disconnect();
    await cluster!.stop();
    assert.deepEqual(
      pids.filter((pid) => alive(pid)),
      [],
    );
    assert.deepEqual(await redisProcessesOn(cluster!.ports), []);
  });
});

describe("Redis Sentinel harness: a master, a replica, 3 sentinels", () => {
  let sentinel: TestRedisSentinel | undefined;
  let client: Redis | undefined;

  before(async () => {
    const startedAt = Date.now();
    sentinel = await TestRedisSentinel.start();
    console.log(
      `redis sentinel (1 master, 1 replica, 3 sentinels) started in ${Date.now() - startedAt} ms: ${sentinel.url}`,
    );
    client = quiet(sentinel.client());
  });
  after(async () => {
    client?.disconnect();
    await sentinel?.stop();
  });

  test("ioredis with sentinels finds the master, writes and reads", async () => {
    assert.match(sentinel!.url, /^redis\+sentinel:\/\/(127\.0\.0\.1:\d+,){2}127\.0\.0\.1:\d+\/tollgate$/);
    await client!.set("greeting", "hello");
    assert.equal(await client!.get("greeting"), "hello");
    const [role] = (await client!.call("ROLE")) as unknown[];
    assert.equal(role, "master");
  });

  test("SIGKILL the master: the sentinels promote the replica, which kept what was acknowledged", async () => {
    await client!.set("survivor", "kept");
    assert.equal(await client!.call("WAIT", "1", "2000"), 1);
    const master = await sentinel!.masterPort();
    const replica = sentinel!.dataPorts.find((port) => port !== master);
    const killed = await sentinel!.killMaster();
    assert.equal(killed, master);
    const failover = await sentinel!.waitForFailover();
    console.log(`sentinel failover: ${failover.ms} ms from SIGKILL to the replica named and serving as master`);
    assert.equal(failover.newMasterPort, replica, "the replica was promoted");
    assert.equal(await sentinel!.masterPort(), failover.newMasterPort);
    // down-after 1 s, quorum, vote, promotion: a few seconds idle.
    assert.ok(failover.ms <= 20_000, `failover took ${failover.ms} ms`);
    await pollUntil(
      "the client to read through the new master",
      async () => (await client!.get("survivor")) === "kept",
      {
        timeoutMs: 15_000,
      },
    );
    await pollUntil("the client to write to the new master", async () => (await client!.set("after", "yes")) === "OK", {
      timeoutMs: 15_000,
    });
  });

  test("stop() leaves no redis-server behind", async () => {
    const pids = sentinel!.pids;
    assert.equal(pids.length, 4, "the replica and 3 sentinels still run");
    client!.disconnect();
    await sentinel!.stop();
    assert.deepEqual(
      pids.filter((pid) => alive(pid)),
      [],
    );
    assert.deepEqual(await redisProcessesOn([...sentinel!.sentinelPorts, ...sentinel!.dataPorts]), []);
  });
});
