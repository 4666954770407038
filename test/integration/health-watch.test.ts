// A health Watch across a graceful stop: grpc-health-check keeps a Watch open
// until its client goes, so the server's stop would wait out its whole grace
// period for any orchestrator watching it. The stop tells each Watch
// NOT_SERVING, then ends it UNAVAILABLE, as WatchQueue's streams end.
import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { HealthCheckResponse_ServingStatus } from "../../gen/ts/grpc/health/v1/health_pb.js";
import { usePrivateRedis } from "../support/fixture.js";
import { pollUntil } from "../support/expect.js";
import { healthClient } from "../support/health.js";
import { startTestServer } from "../support/server.js";

const ctx = usePrivateRedis("health-watch");

test("a graceful stop tells a health Watch NOT_SERVING and ends it, instead of waiting out the grace for it", async () => {
  const tollgate = await startTestServer(ctx.redis.url);
  try {
    const statuses: string[] = [];
    let ended = "";
    const watching = (async () => {
      try {
        for await (const message of healthClient(tollgate.address).watch({ service: "" })) {
          statuses.push(HealthCheckResponse_ServingStatus[message.status]);
        }
        ended = "OK";
      } catch (error) {
        ended = Code[ConnectError.from(error).code];
      }
    })();
    await pollUntil("the Watch's first status", () => statuses.length > 0);

    // A grace far longer than a stop takes: without the Watch ended, close() waits all of it.
    const graceMs = 120_000;
    const closed = tollgate.server.close(graceMs).then(() => "closed" as const);
    const outcome = await Promise.race([closed, sleep(graceMs / 4).then(() => "still waiting" as const)]);
    assert.equal(outcome, "closed", "the stop did not wait out its grace for the Watch");
    await watching;
    assert.deepEqual(statuses, ["SERVING", "NOT_SERVING"]);
    assert.equal(ended, "Unavailable");
  } finally {
    await tollgate.close();
  }
});
