// The start-up checks of the Redis Tollgate connects to: a version the
// scripts run on (6.2, for ZADD ... LT), and maxmemory-policy noeviction (an
// evicted task record would make a claim run an empty payload).
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, test } from "node:test";
import { ConfigError, parseConfig } from "../../src/config.js";
import { freePort, spawnRedisServer } from "../../src/redis/embedded-redis.js";
import {
  MIN_REDIS_VERSION,
  evictionProblem,
  parseRedisVersion,
  versionAtLeast,
  versionProblem,
} from "../../src/redis/requirements.js";
import { describeRun, runCommand } from "../support/command.js";
import { usePrivateRedis } from "../support/fixture.js";
import { startServeProcess } from "../support/serve-process.js";

const BIN = resolve("bin/tollgate.js");

const info = (version: string): string =>
  `# Server\r\nredis_version:${version}\r\nredis_git_sha1:00000000\r\nredis_mode:standalone\r\nprocess_id:4242\r\n`;

describe("the version check, on INFO replies", () => {
  test("reads redis_version from INFO server", () => {
    assert.equal(parseRedisVersion(info("7.0.15")), "7.0.15");
    assert.equal(parseRedisVersion("# Server\nredis_version:6.2.14\n"), "6.2.14");
    // Valkey also answers redis_version, with the Redis version it matches.
    assert.equal(
      parseRedisVersion("# Server\r\nredis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.0.1\r\n"),
      "7.2.4",
    );
    assert.equal(parseRedisVersion("# Server\r\nprocess_id:1\r\n"), undefined);
  });

  test("6.2.0 and newer pass; older is refused naming 6.2 and why", () => {
    assert.equal(MIN_REDIS_VERSION, "6.2.0");
    for (const ok of ["6.2.0", "6.2.14", "6.10.0", "7.0.15", "7.2.4", "10.0.0", "6.2"]) {
      assert.equal(versionAtLeast(ok, MIN_REDIS_VERSION), true, ok);
      assert.equal(versionProblem(info(ok)), undefined, ok);
    }
    for (const old of ["6.0.16", "6.1.9", "5.0.14", "4.0.0", "3.2.12"]) {
      assert.equal(versionAtLeast(old, MIN_REDIS_VERSION), false, old);
      const problem = versionProblem(info(old));
      assert.ok(problem, `${old} is refused`);
      assert.match(problem, new RegExp(`Redis ${old.replaceAll(".", "\\.")} is too old`));
      assert.match(problem, /6\.2\.0 or newer \(ZADD \.\.\. LT\)/);
    }
    assert.equal(versionAtLeast("not a version", MIN_REDIS_VERSION), false);
    assert.equal(versionProblem("# Server\r\n"), undefined, "no version: nothing to refuse on (a warning)");
  });

  test("only noeviction is safe; the message says how to fix it or start anyway", () => {
    assert.equal(evictionProblem("noeviction"), undefined);
    for (const policy of ["allkeys-lru", "volatile-lru", "allkeys-lfu", "volatile-ttl", "allkeys-random"]) {
      const problem = evictionProblem(policy);
      assert.ok(problem !== undefined, policy);
      assert.ok(problem.includes(`maxmemory-policy is "${policy}"`), policy);
      assert.ok(problem.includes("CONFIG SET maxmemory-policy noeviction"));
      assert.ok(problem.includes("TOLLGATE_ALLOW_EVICTION=yes"));
    }
  });
});

test("TOLLGATE_ALLOW_EVICTION / --allow-eviction: yes or no, no by default", () => {
  assert.equal(parseConfig({}).allowEviction, false);
  assert.equal(parseConfig({ TOLLGATE_ALLOW_EVICTION: "yes" }).allowEviction, true);
  assert.equal(parseConfig({ TOLLGATE_ALLOW_EVICTION: "yes" }, ["--allow-eviction", "no"]).allowEviction, false);
  assert.throws(
    () => parseConfig({ TOLLGATE_ALLOW_EVICTION: "maybe" }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.message, 'TOLLGATE_ALLOW_EVICTION: expected yes or no, got "maybe"');
      return true;
    },
  );
});

const ctx = usePrivateRedis("requirements");

/** Settings for `tollgate serve` (startServeProcess adds them to the test's environment). */
function serveEnv(redisUrl: string, name: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    TOLLGATE_REDIS_URL: redisUrl,
    TOLLGATE_HOST: "127.0.0.1",
    TOLLGATE_PORT: "0",
    TOLLGATE_WORKERS: "1",
    TOLLGATE_METRICS_PORT: "0",
    TOLLGATE_LOG_LEVEL: "info",
    TOLLGATE_DATA_DIR: join(ctx.dir, name),
    ...extra,
  };
}

describe("tollgate serve on a Redis that may evict keys", () => {
  test("maxmemory-policy allkeys-lru: start-up refused, exit 2, with the fix; TOLLGATE_ALLOW_EVICTION=yes starts with a warning", async () => {
    const admin = ctx.redis.client();
    try {
      await admin.config("SET", "maxmemory-policy", "allkeys-lru");
      const refused = await runCommand(process.execPath, [BIN, "serve"], {
        env: { ...process.env, ...serveEnv(ctx.redis.url, "refused") },
      });
      assert.equal(refused.code, 2, describeRun(refused));
      assert.match(refused.stderr, /tollgate: Redis maxmemory-policy is "allkeys-lru"/, describeRun(refused));
      assert.match(refused.stderr, /redis-cli CONFIG SET maxmemory-policy noeviction/);
      assert.match(refused.stderr, /TOLLGATE_ALLOW_EVICTION=yes/);
      assert.equal(refused.stderr.trim().split("\n").length, 1, "one line, not a stack trace");

      const allowed = await startServeProcess(serveEnv(ctx.redis.url, "allowed", { TOLLGATE_ALLOW_EVICTION: "yes" }));
      try {
        const warnings = allowed
          .output()
          .split("\n")
          .filter((line) => line.includes('"level":40') && line.includes("allkeys-lru"));
        // The primary says so (its first workers do not check again; a replacement would).
        assert.ok(warnings.length >= 1, `no warning about allkeys-lru:\n${allowed.output()}`);
        assert.match(warnings[0]!, /starting anyway because TOLLGATE_ALLOW_EVICTION is yes/);
      } finally {
        allowed.child.kill("SIGTERM");
        assert.equal(await allowed.exited, 0);
      }
    } finally {
      await admin.config("SET", "maxmemory-policy", "noeviction");
      admin.disconnect();
    }
  });

  test("CONFIG renamed away (as on some managed Redis): it warns that it cannot check, and serves", async () => {
    const port = await freePort();
    const dir = await mkdtemp(join(tmpdir(), "tollgate-renamed-config-"));
    const redis = await spawnRedisServer([
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--dir",
      dir,
      "--save",
      "",
      "--logfile",
      "",
      "--rename-command",
      "CONFIG",
      "",
    ]);
    try {
      const server = await startServeProcess(serveEnv(`redis://127.0.0.1:${port}`, "renamed"));
      try {
        assert.match(
          server.output(),
          /"level":40[^\n]*CONFIG GET maxmemory-policy was refused \(renamed or disabled\?\), so Tollgate cannot check that maxmemory-policy is noeviction/,
        );
      } finally {
        server.child.kill("SIGTERM");
        assert.equal(await server.exited, 0);
      }
    } finally {
      await redis.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("tollgate serve and the partition count of the data", () => {
  test("the first start records the count; another count, or data of the layout before partitions, is refused with exit 2", async () => {
    const admin = ctx.redis.client();
    try {
      await admin.flushall();
      const first = await startServeProcess(serveEnv(ctx.redis.url, "first", { TOLLGATE_PARTITIONS: "8" }));
      first.child.kill("SIGTERM");
      assert.equal(await first.exited, 0);
      assert.equal(await admin.get("tg:layout"), "8", "the count is recorded");

      const other = await runCommand(process.execPath, [BIN, "serve"], {
        env: { ...process.env, ...serveEnv(ctx.redis.url, "other") }, // the default, 16
      });
      assert.equal(other.code, 2, describeRun(other));
      assert.match(other.stderr, /written with TOLLGATE_PARTITIONS=8, not 16/, describeRun(other));
      assert.match(other.stderr, /start with TOLLGATE_PARTITIONS=8/);
      assert.equal(other.stderr.trim().split("\n").length, 1, "one line, not a stack trace");

      await admin.flushall();
      await admin.zadd("tg:due", 1, "alice");
      const legacy = await runCommand(process.execPath, [BIN, "serve"], {
        env: { ...process.env, ...serveEnv(ctx.redis.url, "legacy") },
      });
      assert.equal(legacy.code, 2, describeRun(legacy));
      assert.match(legacy.stderr, /layout before partitions \(tg:due\): drain it/, describeRun(legacy));
      assert.equal(await admin.get("tg:layout"), null, "nothing recorded for data that was refused");
    } finally {
      await admin.flushall();
      admin.disconnect();
    }
  });

  test("TOLLGATE_PARTITIONS / --partitions: 1 to 1024, 16 by default", () => {
    assert.equal(parseConfig({}).partitions, 16);
    assert.equal(parseConfig({ TOLLGATE_PARTITIONS: "64" }).partitions, 64);
    assert.equal(parseConfig({}, ["--partitions", "1"]).partitions, 1);
    for (const bad of ["0", "1025", "x"]) assert.throws(() => parseConfig({ TOLLGATE_PARTITIONS: bad }), ConfigError);
  });
});
