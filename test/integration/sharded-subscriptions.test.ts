// The store's pub/sub (src/redis/subscriptions.ts) on a real Redis Cluster:
// sharded pub/sub, each partition's channel (`tg:{7}:wake`) subscribed with
// SSUBSCRIBE on the master serving its slot, so SPUBLISH reaches it and a
// plain PUBLISH does not; after a SIGKILLed master's replica takes over, the
// subscription moves to it and reconnect listeners hear of it; unsubscribe
// and close leave nothing subscribed and no connection open. And plain
// SUBSCRIBE on a standalone Redis.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Cluster } from "ioredis";
import { createLogger } from "../../src/logger.js";
import { connectRedis, type RedisClient } from "../../src/redis/connection.js";
import { Subscriptions } from "../../src/redis/subscriptions.js";
import { pollUntil } from "../support/expect.js";
import { TestRedis } from "../support/redis.js";
import { TestRedisCluster } from "../support/redis-cluster.js";
import { nodeCommand } from "../support/redis-nodes.js";

/** The subscriber connection's name; ioredis names each per-master one `ioredis-cluster(ssubscriber):` and this. */
const CONNECTION_NAME = "tollgate-sharded-test";
const PARTITIONS = 16;
const wake = (partition: number): string => `tg:{${partition}}:wake`;

/** How long a message that is not to come gets to show up anyway. */
const QUIET_MS = 300;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Subscribers of `channel` on the node at `port` (PUBSUB SHARDNUMSUB). */
async function shardSubscribers(port: number, channel: string): Promise<number> {
  const reply = (await nodeCommand(port, "PUBSUB", "SHARDNUMSUB", channel)) as [string, number];
  return Number(reply[1]);
}

/** Names of the client connections open on the node at `port`, but the one asking. */
async function clientNames(port: number): Promise<string[]> {
  const list = String(await nodeCommand(port, "CLIENT", "LIST"));
  return list
    .split("\n")
    .filter((line) => !line.includes("cmd=client|list"))
    .map((line) => /\bname=(\S*)/.exec(line)?.[1] ?? "")
    .filter((name) => name !== "");
}

describe("sharded subscriptions on a Redis Cluster", () => {
  let cluster: TestRedisCluster | undefined;
  let store: RedisClient | undefined;
  let publisher: Cluster | undefined;
  let subscriptions: Subscriptions | undefined;
  const received = new Map<string, string[]>();
  const stops = new Map<string, () => Promise<void>>();
  let reconnects = 0;

  before(async () => {
    cluster = await TestRedisCluster.start();
    store = await connectRedis(cluster.url, createLogger("silent"));
    publisher = cluster.client();
    publisher.on("error", () => {});
    subscriptions = new Subscriptions(store, CONNECTION_NAME);
    subscriptions.onReconnect(() => reconnects++);
  });
  after(async () => {
    subscriptions?.close();
    store?.disconnect();
    publisher?.disconnect();
    await cluster?.stop();
  });

  /** SPUBLISHes `message` on `channel` until it arrives (the publisher's slot map may lag a failover). */
  async function deliver(channel: string, message: string, timeoutMs = 10_000): Promise<number> {
    const startedAt = Date.now();
    await pollUntil(
      `${message} on ${channel}`,
      async () => {
        if (received.get(channel)?.includes(message)) return true;
        await publisher!.spublish(channel, message);
        await sleep(20);
        return received.get(channel)?.includes(message);
      },
      { timeoutMs, intervalMs: 50 },
    );
    return Date.now() - startedAt;
  }

  test("16 partition channels over all 3 masters: each gets its SPUBLISHed message, never a plain PUBLISH", async () => {
    const channels = Array.from({ length: PARTITIONS }, (_, i) => wake(i));
    const owners = await Promise.all(channels.map((channel) => cluster!.masterOf(channel)));
    assert.equal(new Set(owners).size, 3, `the channels' masters: ${owners.join(", ")}`);

    await Promise.all(
      channels.map(async (channel) => {
        received.set(channel, []);
        stops.set(channel, await subscriptions!.listen(channel, (message) => received.get(channel)!.push(message)));
      }),
    );
    // One subscription per channel, on the master serving its slot, none elsewhere.
    for (const [i, channel] of channels.entries()) {
      for (const port of new Set(owners)) {
        const expected = port === owners[i] ? 1 : 0;
        assert.equal(await shardSubscribers(port, channel), expected, `SHARDNUMSUB ${channel} on ${port}`);
      }
    }
    for (const port of new Set(owners)) {
      const names = await clientNames(port);
      assert.equal(
        names.filter((name) => name === `ioredis-cluster(ssubscriber):${CONNECTION_NAME}`).length,
        1,
        `one sharded subscriber connection on ${port}: ${names.join(", ")}`,
      );
    }

    for (const channel of channels) await publisher!.publish(channel, `plain ${channel}`);
    for (const channel of channels) await publisher!.spublish(channel, `sharded ${channel}`);
    await pollUntil("every channel's sharded message", () =>
      channels.every((channel) => received.get(channel)!.includes(`sharded ${channel}`)),
    );
    await sleep(QUIET_MS);
    for (const channel of channels) assert.deepEqual(received.get(channel), [`sharded ${channel}`], channel);
    assert.equal(reconnects, 0, "no reconnect reported while nothing was lost");
  });

  test("SIGKILL the master of one channel: the subscription moves to its replica and reconnect listeners hear of it", async () => {
    const channel = wake(0);
    const victim = await cluster!.masterOf(channel);
    const others = Array.from({ length: PARTITIONS }, (_, i) => wake(i)).filter((c) => c !== channel);
    const [heir] = (await cluster!.roles()).filter((node) => node.masterPort === victim);
    assert.ok(heir, `a replica of ${victim}`);
    // At each reconnect report, whether the heir had the channel's subscription
    // then (asked over a new connection, so after anything already sent to it).
    const reports: { readonly at: number; readonly subscribed: Promise<number> }[] = [];
    const stopWatching = subscriptions!.onReconnect(() => {
      reports.push({ at: Date.now(), subscribed: shardSubscribers(heir.port, channel).catch(() => -1) });
    });
    const killedAt = Date.now();
    await cluster!.killMaster(victim);
    const failover = await cluster!.waitForFailover();
    assert.equal(failover.newMasterPort, heir.port);
    assert.equal(await cluster!.masterOf(channel), failover.newMasterPort);
    const subscribedAt = await pollUntil(
      `a subscriber of ${channel} on the new master`,
      async () => ((await shardSubscribers(failover.newMasterPort, channel)) === 1 ? Date.now() : undefined),
      { timeoutMs: 15_000 },
    );
    const deliveryMs = await deliver(channel, "after the failover");
    const deliveredAt = Date.now();
    // Reports still to come would come within ioredis' 2 s retry backoff.
    await sleep(2_500);
    stopWatching();
    const subscribedAtReport = await Promise.all(reports.map((report) => report.subscribed));
    console.log(
      `failover of ${victim} → ${failover.newMasterPort}: cluster whole ${failover.ms} ms after SIGKILL; ` +
        `reconnects reported at ${reports.map((r, i) => `${r.at - killedAt} ms (${subscribedAtReport[i]} subscriber on the heir)`).join(", ")}; ` +
        `SSUBSCRIBE on the new master seen ${subscribedAt - killedAt} ms after SIGKILL ` +
        `(${subscribedAt - killedAt - failover.ms} ms after the cluster was whole); ` +
        `first SPUBLISH delivered ${deliveredAt - killedAt} ms after SIGKILL (${deliveryMs} ms of publishing)`,
    );
    assert.ok(reports.length > 0, "a reconnect was reported");
    assert.ok(
      reports.length <= 3,
      `${reports.length} reconnects reported: ioredis' retry rounds are not each reported`,
    );
    assert.equal(
      subscribedAtReport.at(-1),
      1,
      "the last reconnect was reported with the subscription on the new master",
    );
    assert.ok(reconnects >= reports.length);
    assert.deepEqual(
      received.get(channel)?.filter((message) => message !== "after the failover"),
      [`sharded ${channel}`],
    );
    // The channels on the other masters never stopped working.
    for (const other of others) await deliver(other, "after the failover");
  });

  test("the subscriber client losing every node and connecting again: subscribed again on a new client, reported", async () => {
    // What a Cluster client does once it lost every node (the whole cluster
    // was down): ioredis 5.9 would not restart its sharded subscribers then.
    const inner = (subscriptions as unknown as { subscriber: { redis: Cluster } }).subscriber.redis;
    const before = reconnects;
    inner.disconnect(true);
    await pollUntil("a reconnect reported", () => reconnects > before);
    const channel = wake(2);
    await deliver(channel, "after the whole client reconnected");
    const masters = (await cluster!.roles()).filter((node) => node.role === "master" && !node.failing);
    await pollUntil("one sharded subscriber connection per master, the old client's gone", async () => {
      for (const master of masters) {
        const names = await clientNames(master.port);
        if (names.filter((name) => name === `ioredis-cluster(ssubscriber):${CONNECTION_NAME}`).length !== 1)
          return false;
      }
      return true;
    });
  });

  test("unsubscribe stops delivery; close leaves no subscriber connection on any node", async () => {
    const channel = wake(1);
    const owner = await cluster!.masterOf(channel);
    await stops.get(channel)!();
    await stops.get(channel)!(); // idempotent
    assert.equal(await shardSubscribers(owner, channel), 0, "SUNSUBSCRIBEd");
    const before = received.get(channel)!.length;
    await publisher!.spublish(channel, "after unsubscribe");
    await sleep(QUIET_MS);
    assert.equal(received.get(channel)!.length, before, "nothing delivered after unsubscribe");
    // A new listener subscribes again.
    const again: string[] = [];
    const stop = await subscriptions!.listen(channel, (message) => again.push(message));
    await publisher!.spublish(channel, "listening again");
    await pollUntil("the new listener's message", () => again.includes("listening again"));
    await stop();

    subscriptions!.close();
    subscriptions!.close(); // idempotent
    await assert.rejects(
      subscriptions!.listen(channel, () => {}),
      /closed/,
    );
    const live = (await cluster!.roles()).filter((node) => !node.failing);
    await pollUntil("no subscriber connection left on any node", async () => {
      for (const node of live) {
        const names = await clientNames(node.port);
        if (names.some((name) => name.includes(CONNECTION_NAME))) return false;
      }
      return true;
    });
  });
});

describe("subscriptions on a standalone Redis", () => {
  let redis: TestRedis | undefined;
  let store: RedisClient | undefined;
  let subscriptions: Subscriptions | undefined;

  before(async () => {
    redis = await TestRedis.start();
    store = await connectRedis(redis.url, createLogger("silent"));
    subscriptions = new Subscriptions(store, CONNECTION_NAME);
  });
  after(async () => {
    subscriptions?.close();
    store?.disconnect();
    await redis?.stop();
  });

  test("plain SUBSCRIBE: a PUBLISHed message arrives, none after unsubscribe, and close leaves no connection", async () => {
    const got: string[] = [];
    const stop = await subscriptions!.listen("tg:{0}:wake", (message) => got.push(message));
    const names = await clientNames(redis!.port);
    assert.ok(names.includes(CONNECTION_NAME), `the subscriber connection: ${names.join(", ")}`);
    await store!.publish("tg:{0}:wake", "hello");
    await pollUntil("the message", () => got.includes("hello"));
    await stop();
    await store!.publish("tg:{0}:wake", "gone");
    await sleep(QUIET_MS);
    assert.deepEqual(got, ["hello"]);
    subscriptions!.close();
    await pollUntil(
      "no subscriber connection",
      async () => !(await clientNames(redis!.port)).includes(CONNECTION_NAME),
    );
  });
});
