// Wake-ups the drainer receives while one of its claims is in flight: the
// claim's reply was taken before the wake's cause, so its plan alone cannot
// know about it, and the wake must still be honoured.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { ClaimResult } from "../../src/core/store.js";
import { useTestServer } from "../support/fixture.js";
import { pollUntil } from "../support/expect.js";
import { keys } from "../support/store.js";
import { Disposition, TaskState } from "../../gen/ts/tollgate/v1/task_service_pb.js";

// A long lease: with nothing else due the drainer sleeps this long, so a lost
// wake shows as a start tens of seconds late.
const ctx = useTestServer("drain-wakeups", { TOLLGATE_RATE_LIMITS: "1/1s", TOLLGATE_LEASE_MS: "30000" });

describe("drainer wake-ups", () => {
  test("a user made due while a claim is in flight starts on time, not at the next claim", async () => {
    const { client, store } = ctx.tollgate;
    // Hold the next claim's reply (after Redis ran it) until the test lets go.
    const realClaim = store.claim.bind(store);
    let hold: Promise<void> | undefined;
    let held: () => void = () => {};
    let inFlight = false;
    store.claim = async (...args: Parameters<typeof store.claim>): Promise<ClaimResult> => {
      const result = await realClaim(...args);
      if (hold) {
        inFlight = true;
        await hold;
        inFlight = false;
      }
      return result;
    };
    try {
      // B uses its one start per second now, so its next task is due in ~1 s.
      const first = await client.submit({ userId: "bee" });
      assert.equal(first.disposition, Disposition.STARTED);

      hold = new Promise((resolve) => (held = resolve));
      const redis = ctx.redis.client();
      try {
        await redis.publish(keys.partition(0).wakeChannel, String(Date.now())); // the drainer claims now
      } finally {
        redis.disconnect();
      }
      await pollUntil("a claim held in flight", () => inFlight, { timeoutMs: 10_000 });

      // Queued while the claim is in flight: the wake for B arrives now.
      const second = await client.submit({ userId: "bee" });
      assert.equal(second.disposition, Disposition.QUEUED);
      const submittedAt = Date.now();
      await sleep(150); // the wake is delivered while the reply is held
      const release = held;
      hold = undefined;
      release();

      // Due about 1 s after the first start; a lost wake waits for the next
      // claim, which with this lease is 30 s away. 10 s leaves a loaded
      // machine room and still tells the two apart.
      await pollUntil(
        "B's queued task to start",
        async () => (await client.getTask({ taskId: second.taskId })).task!.state !== TaskState.QUEUED,
        { timeoutMs: 10_000 },
      );
      assert.ok(Date.now() - submittedAt < 10_000);
    } finally {
      store.claim = realClaim;
    }
  });
});
