// Redis restarted under Submit load: UNAVAILABLE while it is down, no
// acknowledged task lost, and the service resuming by itself.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { Code, ConnectError } from "@connectrpc/connect";
import { usePrivateRedis } from "../support/fixture.js";
import { startTestServer } from "../support/server.js";
import { waitUntilAllRan } from "../support/task-log.js";
import { pollUntil } from "../support/expect.js";

const FIXTURE_HANDLERS = fileURLToPath(new URL("../fixtures/handlers.ts", import.meta.url));

const ctx = usePrivateRedis("faults");

test("Redis restarted under load: UNAVAILABLE while down, nothing acknowledged lost, service resumes by itself", async () => {
  const log = join(ctx.dir, "restart.log");
  process.env.TOLLGATE_FIXTURE_LOG = log;
  const tollgate = await startTestServer(ctx.redis.url, {
    TOLLGATE_RATE_LIMITS: "5/1s",
    TOLLGATE_HANDLER: FIXTURE_HANDLERS,
  });
  try {
    const acknowledged: string[] = [];
    const refusals = new Map<Code, number>();
    let running = true;
    const load = (async () => {
      for (let i = 0; running && i < 5_000; i++) {
        try {
          acknowledged.push((await tollgate.client.submit({ userId: `r${i % 10}` }, { timeoutMs: 5_000 })).taskId);
        } catch (error) {
          const code = error instanceof ConnectError ? error.code : Code.Unknown;
          refusals.set(code, (refusals.get(code) ?? 0) + 1);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
    })();
    await pollUntil("load before the restart", () => acknowledged.length >= 50, { timeoutMs: 15_000 });
    await ctx.redis.stop();
    const ackedWhenStopped = acknowledged.length;
    await pollUntil("UNAVAILABLE while Redis is down", () => (refusals.get(Code.Unavailable) ?? 0) >= 5, {
      timeoutMs: 10_000,
    });
    assert.ok(acknowledged.length <= ackedWhenStopped + 1, "nothing is acknowledged while Redis is down");
    await ctx.redis.start();
    await pollUntil("Submits to succeed again", () => acknowledged.length >= ackedWhenStopped + 50, {
      timeoutMs: 20_000,
    });
    running = false;
    await load;
    assert.deepEqual(
      [...refusals.keys()].filter((code) => code !== Code.Unavailable),
      [],
      "only UNAVAILABLE while down",
    );
    await waitUntilAllRan(log, acknowledged, 30_000);
  } finally {
    await tollgate.close();
    delete process.env.TOLLGATE_FIXTURE_LOG;
  }
});
