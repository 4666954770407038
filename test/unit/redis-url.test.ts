// TOLLGATE_REDIS_URL's forms (standalone, Sentinel, Cluster), each bad value
// refused with one line that names it and hides its passwords, and the key
// prefix each kind of deployment gets. No I/O.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ConfigError, parseConfig } from "../../src/config.js";
import { parseRatePolicy } from "../../src/core/rate-policy.js";
import type { RedisClient } from "../../src/redis/connection.js";
import { createKeys } from "../../src/redis/keys.js";
import { clusterSlotOf, partitionOf } from "../../src/redis/partitions.js";
import { newTaskId } from "../../src/core/task-id.js";
import { RateWindows } from "../../src/redis/rate-windows.js";
import { parseRedisUrl, redactUrl, RedisUrlError } from "../../src/redis/redis-url.js";

describe("parseRedisUrl", () => {
  test("redis:// and rediss:// stay one server, the URL handed on as it is", () => {
    assert.deepEqual(parseRedisUrl("redis://127.0.0.1:6379"), { kind: "standalone", url: "redis://127.0.0.1:6379" });
    assert.deepEqual(parseRedisUrl("rediss://:pw@cache:6380/2"), {
      kind: "standalone",
      url: "rediss://:pw@cache:6380/2",
    });
  });

  test("redis+sentinel://: sentinels, master name, data-node auth from userinfo, sentinel auth from the query", () => {
    assert.deepEqual(
      parseRedisUrl("redis+sentinel://app:s%40cret@10.0.0.1:26379,10.0.0.2:26380,[::1]:26381/mymaster"),
      {
        kind: "sentinel",
        sentinels: [
          { host: "10.0.0.1", port: 26379 },
          { host: "10.0.0.2", port: 26380 },
          { host: "::1", port: 26381 },
        ],
        masterName: "mymaster",
        auth: { username: "app", password: "s@cret" },
        sentinelAuth: { username: undefined, password: undefined },
      },
    );
    const target = parseRedisUrl("redis+sentinel://:pw@s1,s2:5000/main?sentinel_password=spw&sentinel_username=watch");
    assert.equal(target.kind, "sentinel");
    if (target.kind !== "sentinel") return;
    assert.deepEqual(target.sentinels, [
      { host: "s1", port: 26379 },
      { host: "s2", port: 5000 },
    ]);
    assert.deepEqual(target.auth, { username: undefined, password: "pw" });
    assert.deepEqual(target.sentinelAuth, { username: "watch", password: "spw" });
  });

  test("redis+cluster:// and rediss+cluster://: seed nodes, auth, TLS", () => {
    assert.deepEqual(parseRedisUrl("redis+cluster://127.0.0.1:7000,127.0.0.1:7001"), {
      kind: "cluster",
      nodes: [
        { host: "127.0.0.1", port: 7000 },
        { host: "127.0.0.1", port: 7001 },
      ],
      auth: { username: undefined, password: undefined },
      tls: false,
    });
    const tls = parseRedisUrl("rediss+cluster://:pw@node-a:7000/");
    assert.equal(tls.kind, "cluster");
    if (tls.kind !== "cluster") return;
    assert.equal(tls.tls, true);
    assert.deepEqual(tls.auth, { username: undefined, password: "pw" });
    assert.deepEqual(tls.nodes, [{ host: "node-a", port: 7000 }]);
  });

  const bad: [url: string, mentions: RegExp][] = [
    ["http://localhost:6379", /unknown scheme "http:\/\/"/],
    ["localhost:6379", /expected redis:\/\//],
    ["redis+sentinel://s1:26379", /\/<master name>/],
    ["redis+sentinel://s1:26379/", /\/<master name>/],
    ["redis+sentinel://s1:26379/a/b", /\/<master name>/],
    ["redis+sentinel://s1:26379/m?password=x", /unknown parameter "password"/],
    ["redis+sentinel:///mymaster", /names no host/],
    ["redis+cluster://", /names no host/],
    ["redis+cluster://a:7000,,b:7001", /"" is not host:port/],
    ["redis+cluster://a:70000", /"a:70000" is not host:port/],
    ["redis+cluster://a:port", /"a:port" is not host:port/],
    ["redis+cluster://a:7000/2", /has a path/],
    ["redis+cluster://a:7000?x=1", /has parameters/],
    ["redis+cluster://a:7000, b:7001", /expected/],
  ];
  for (const [url, mentions] of bad) {
    test(`refuses ${url}`, () => {
      assert.throws(
        () => parseRedisUrl(url),
        (error: unknown) => error instanceof RedisUrlError && mentions.test(error.message),
      );
    });
  }
});

describe("TOLLGATE_REDIS_URL through parseConfig", () => {
  test("each form is accepted and kept as given (workers get the same string)", () => {
    for (const url of [
      "redis://h:1",
      "redis+sentinel://s1:26379,s2:26379/mymaster",
      "redis+cluster://n1:7000,n2:7001",
      "rediss+cluster://n1:7000",
    ]) {
      assert.equal(parseConfig({ TOLLGATE_REDIS_URL: url }).redisUrl, url);
    }
  });

  test("a bad one is a ConfigError naming the variable, on one line, without passwords", () => {
    for (const url of [
      "redis+sentinel://user:hunter2@s1:26379",
      "redis+cluster://:hunter2@a:port",
      "redis+sentinel://s1/m?sentinel_password=hunter2&x=1",
    ]) {
      assert.throws(
        () => parseConfig({ TOLLGATE_REDIS_URL: url }),
        (error: unknown) =>
          error instanceof ConfigError &&
          error.message.startsWith("TOLLGATE_REDIS_URL: ") &&
          !error.message.includes("hunter2") &&
          !error.message.includes("\n"),
      );
    }
  });

  test("redactUrl hides userinfo and the sentinel password", () => {
    assert.equal(
      redactUrl("redis+sentinel://u:p@s1:26379/m?sentinel_password=sp&sentinel_username=w"),
      "redis+sentinel://***@s1:26379/m?sentinel_password=***&sentinel_username=w",
    );
  });
});

describe("key prefix per kind of deployment", () => {
  test("every key of a user, whatever its id holds, is in its partition's slot", () => {
    const keys = createKeys(undefined, 16);
    const windows = new RateWindows({} as RedisClient, parseRatePolicy("1/1s,20/1m"), keys);
    for (const user of ["we{ird}:user*", "{", "}", "{}", "a:b:c", "x}{y", "ünïcode", ""]) {
      const partition = keys.forUser(user);
      const slot = clusterSlotOf(partition.dueUsers);
      const taskId = newTaskId(partition.partition);
      const userKeys = [
        partition.queue(user),
        partition.dueUsers,
        partition.heads,
        partition.leases,
        partition.retries,
        partition.deadLetters(user),
        partition.stats(user),
        partition.totals,
        partition.wakeChannel,
        partition.progressChannel,
        partition.task(taskId),
        partition.claim("c1"),
        partition.idempotency(user, "{k}"),
        // rate-limiter-flexible names the window keys (no client needed for that).
        ...windows.keysFor(user),
      ];
      for (const key of userKeys) assert.equal(clusterSlotOf(key), slot, `${JSON.stringify(user)}: ${key}`);
      assert.equal(keys.forTask(taskId), partition, "a task id names its partition");
    }
  });

  test("the partitions spread evenly over the slots, so over a Cluster's masters", () => {
    for (const count of [1, 3, 16, 64]) {
      const keys = createKeys(undefined, count);
      for (const partition of keys.all) {
        const slot = clusterSlotOf(partition.dueUsers);
        assert.ok(
          slot >= Math.floor((partition.partition * 16_384) / count),
          `${count}: partition ${partition.partition} slot ${slot}`,
        );
        assert.ok(
          slot < Math.floor(((partition.partition + 1) * 16_384) / count),
          `${count}: partition ${partition.partition} slot ${slot}`,
        );
      }
    }
  });

  test("users spread over the partitions, each always to the same one", () => {
    const counts = new Array<number>(16).fill(0);
    for (let i = 0; i < 16_000; i++) counts[partitionOf(`user-${i}`, 16)]!++;
    for (const count of counts) assert.ok(count > 800 && count < 1_200, `per partition: ${counts.join(" ")}`);
    // Fixed forever: a change would move users away from their queued tasks.
    assert.deepEqual(
      ["alice", "bob", "carol"].map((user) => partitionOf(user, 16)),
      [7, 4, 2],
    );
  });
});
