// A claim whose reply the client stops waiting for (command timeout, 2 s)
// while Redis is busy with a slow script still runs in Redis afterwards. The
// drainer learns what it took from the claim's record and hands it back, so
// the task runs seconds later instead of after its 30 s lease.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { useTestServer } from "../support/fixture.js";
import { pollUntil } from "../support/expect.js";
import { Disposition, TaskState } from "../../gen/ts/tollgate/v1/task_service_pb.js";

const ctx = useTestServer("claim-recovery", { TOLLGATE_RATE_LIMITS: "1/1s", TOLLGATE_LEASE_MS: "30000" });

/** Keeps Redis busy for `ms` (a script spinning on TIME); other clients wait. */
const BUSY_SCRIPT = `
local function ms() local t = redis.call('TIME') return tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000 end
local start = ms()
while ms() - start < tonumber(ARGV[1]) do end
return 1`;

describe("claims without a reply", () => {
  test("a task claimed by a claim that timed out at the client is handed back and runs long before its lease ends", async () => {
    const { client } = ctx.tollgate;
    const first = await client.submit({ userId: "busy" });
    assert.equal(first.disposition, Disposition.STARTED);
    const second = await client.submit({ userId: "busy" });
    assert.equal(second.disposition, Disposition.QUEUED);
    const submittedAt = Date.now();

    // Due about 1 s from now: its claim is sent while Redis spins, gives up
    // after 2 s at the client, and runs in Redis once the script ends.
    const blocker = ctx.redis.client();
    try {
      await blocker.eval(BUSY_SCRIPT, 0, 3_500);
    } finally {
      blocker.disconnect();
    }
    const task = await pollUntil(
      "the queued task to succeed",
      async () => {
        const found = (await client.getTask({ taskId: second.taskId }, { timeoutMs: 1_000 })).task!;
        return found.state === TaskState.SUCCEEDED ? found : undefined;
      },
      { timeoutMs: 20_000 },
    );
    assert.equal(task.attempts, 1, "the claim that lost its reply does not count as an attempt");
    // Seconds after the 3.5 s script when handed back; a lost claim would
    // wait out its 30 s lease. 20 s leaves a loaded machine room.
    assert.ok(Date.now() - submittedAt < 20_000);
  });
});
