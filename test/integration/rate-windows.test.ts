// The rate windows are rate-limiter-flexible's own Redis counters: what the
// Lua scripts use, the library sees, and the other way round.
import assert from "node:assert/strict";
import { test } from "node:test";
import { RateLimiterRedis } from "rate-limiter-flexible";
import { createKeys } from "../../src/redis/keys.js";
import { parseRatePolicy } from "../../src/core/rate-policy.js";
import { RateWindows } from "../../src/redis/rate-windows.js";
import { usePrivateRedis } from "../support/fixture.js";
import { startTestServer } from "../support/server.js";
import { Disposition } from "../../gen/ts/tollgate/v1/task_service_pb.js";

const ctx = usePrivateRedis("windows");

test("the windows are rate-limiter-flexible's own counters: each side sees what the other used", async () => {
  const tollgate = await startTestServer(ctx.redis.url, { TOLLGATE_RATE_LIMITS: "2/1m,5/1h" });
  try {
    const windows = new RateWindows(tollgate.redis, parseRatePolicy("2/1m,5/1h"), createKeys());
    const minute = new RateLimiterRedis({
      storeClient: tollgate.redis,
      keyPrefix: createKeys().forUser("shared").windowPrefix(60_000),
      points: 2,
      duration: 60,
    });

    // A Submit's start shows in rate-limiter-flexible's reading of the window...
    assert.equal((await tollgate.client.submit({ userId: "shared" })).disposition, Disposition.STARTED);
    const read = await minute.get("shared");
    assert.equal(read?.consumedPoints, 1);
    assert.ok(read!.msBeforeNext > 55_000 && read!.msBeforeNext <= 60_000, `window closes in ${read!.msBeforeNext} ms`);
    const [ours] = await windows.read("shared", Date.now());
    assert.equal(ours!.count, 1);

    // ...and a unit that rate-limiter-flexible consumes counts against Submit.
    await minute.consume("shared", 1);
    assert.equal((await tollgate.client.submit({ userId: "shared" })).disposition, Disposition.QUEUED);
  } finally {
    await tollgate.close();
  }
});
