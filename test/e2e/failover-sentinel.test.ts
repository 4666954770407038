// `tollgate serve` behind Redis Sentinel (TOLLGATE_REDIS_URL=
// redis+sentinel://…/<master>, TOLLGATE_REPLICA_ACKS=1): when the master is
// SIGKILLed the sentinels promote a replica, Submit answers only OK or
// UNAVAILABLE meanwhile, Tollgate serves again by itself, and every
// acknowledged task runs. Skipped until src/config.ts accepts the URL.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  clientFor,
  serveEnv,
  checkFailover,
  stopServe,
  submitThroughFailover,
  unsupportedRedisUrl,
} from "../support/failover.js";
import { TestRedisSentinel } from "../support/redis-sentinel.js";
import { startServeProcess } from "../support/serve-process.js";

const unsupported = unsupportedRedisUrl("redis+sentinel://127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381/tollgate");

describe("tollgate serve behind Redis Sentinel", () => {
  let sentinel: TestRedisSentinel | undefined;
  let dir = "";

  before(async () => {
    if (unsupported) return;
    dir = await mkdtemp(join(tmpdir(), "tollgate-failover-sentinel-"));
    // Two replicas: with TOLLGATE_REPLICA_ACKS=1 the promoted one still has
    // one to WAIT for after the failover.
    const startedAt = Date.now();
    sentinel = await TestRedisSentinel.start({ replicas: 2 });
    console.log(`redis sentinel (1 master, 2 replicas, 3 sentinels) started in ${Date.now() - startedAt} ms`);
  });
  after(async () => {
    await sentinel?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("SIGKILL the master under load: only OK or UNAVAILABLE, recovery by itself, no acknowledged task lost", async (t) => {
    if (unsupported) return t.skip(unsupported);
    const env = serveEnv(sentinel!.url, dir, "failover", { TOLLGATE_RATE_LIMITS: "20/1s" });
    const server = await startServeProcess(env);
    try {
      const users = ["s-fail-a", "s-fail-b", "s-fail-c", "s-fail-d"];
      const run = await submitThroughFailover([clientFor(server), clientFor(server)], users, async () => {
        const victim = await sentinel!.killMaster();
        const failover = await sentinel!.waitForFailover();
        console.log(`sentinel: 127.0.0.1:${failover.newMasterPort} replaced 127.0.0.1:${victim} in ${failover.ms} ms`);
      });
      await checkFailover("sentinel", run, server, env.TOLLGATE_FIXTURE_LOG);
    } finally {
      assert.equal(await stopServe(server), 0);
    }
  });
});
