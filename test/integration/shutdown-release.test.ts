// Graceful shutdown hands its tasks back: a task still running when the grace
// period ends, and a task claimed by a claim still in flight when the drainer
// closes, go back to the head of their user's queue at once, their attempt
// not counted, instead of waiting out a lease (and, on a last attempt, being
// dead-lettered though their handler never failed). Leases here are 30 s, so
// a prompt run elsewhere proves the release.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import type { Redis } from "ioredis";
import type { ClaimResult } from "../../src/core/store.js";
import { usePrivateRedis } from "../support/fixture.js";
import { pollUntil } from "../support/expect.js";
import { startTestServer } from "../support/server.js";
import { keys } from "../support/store.js";
import { leaseMember } from "../../src/redis/keys.js";
import { readFixtureLog } from "../support/task-log.js";
import { Disposition, TaskState } from "../../gen/ts/tollgate/v1/task_service_pb.js";

const FIXTURE_HANDLERS = fileURLToPath(new URL("../fixtures/handlers.ts", import.meta.url));
const ctx = usePrivateRedis("shutdown-release");

const settings = {
  TOLLGATE_HANDLER: FIXTURE_HANDLERS,
  TOLLGATE_MAX_ATTEMPTS: "1",
  TOLLGATE_LEASE_MS: "30000",
  TOLLGATE_RATE_LIMITS: "1/1s",
};

/** A released task as Redis holds it: queued, attempt not counted, no lease. */
async function assertReleased(redis: Redis, userId: string, taskId: string, headOf: string[]): Promise<void> {
  assert.equal(headOf[0], taskId, `the task is back at the head of ${userId}'s queue: [${headOf.join(", ")}]`);
  assert.equal(await redis.hget(keys.forTask(taskId)!.task(taskId), "s"), "q", "its state is queued");
  assert.equal(
    await redis.hget(keys.forTask(taskId)!.task(taskId), "a"),
    "0",
    "the interrupted attempt is not counted",
  );
  assert.equal(await redis.zscore(keys.forUser(userId).leases, leaseMember(taskId, userId)), null, "its lease is gone");
  assert.equal(await redis.hget(keys.forUser(userId).stats(userId), "r"), "0", "nothing counts as running");
  assert.notEqual(await redis.zscore(keys.forUser(userId).dueUsers, userId), null, "its user is due");
}

describe("shutdown releases leases", () => {
  test("a task aborted at the end of the grace period is released and another server runs it to SUCCEEDED", async () => {
    const log = join(ctx.dir, "grace.log");
    process.env.TOLLGATE_FIXTURE_LOG = log;
    const redis = ctx.redis.client();
    const first = await startTestServer(ctx.redis.url, { ...settings, TOLLGATE_CONCURRENCY: "1" });
    try {
      const slow = await first.client.submit({
        userId: "grace",
        kind: "slow",
        payload: new TextEncoder().encode("2000"),
      });
      assert.equal(slow.disposition, Disposition.STARTED);
      const behind = await first.client.submit({ userId: "grace" });
      assert.equal(behind.disposition, Disposition.QUEUED);
      await pollUntil("the slow task's start", async () =>
        (await readFixtureLog(log)).some((s) => s.taskId === slow.taskId),
      );

      await first.server.close(300);
      await assertReleased(
        redis,
        "grace",
        slow.taskId,
        await redis.lrange(keys.forUser("grace").queue("grace"), 0, -1),
      );
      assert.equal(await redis.hget(keys.forUser("grace").totals, "q"), "2", "both tasks count as queued");

      const second = await startTestServer(ctx.redis.url, { ...settings, TOLLGATE_CONCURRENCY: "1" });
      try {
        const task = await pollUntil(
          "the released task to succeed on the new server",
          async () => {
            const found = (await second.client.getTask({ taskId: slow.taskId })).task!;
            return found.state === TaskState.SUCCEEDED || found.state === TaskState.DEAD ? found : undefined;
          },
          { timeoutMs: 20_000 },
        );
        assert.equal(TaskState[task.state], "SUCCEEDED");
        assert.equal(task.attempts, 1);
      } finally {
        await second.close();
      }
    } finally {
      await first.close();
      redis.disconnect();
      delete process.env.TOLLGATE_FIXTURE_LOG;
    }
  });

  test("a task claimed by a claim in flight when the server closes is released, not left leased", async () => {
    const redis = ctx.redis.client();
    const first = await startTestServer(ctx.redis.url, settings);
    const store = first.store;
    const realClaim = store.claim.bind(store);
    let held: () => void = () => {};
    let claimedWhileHeld = false;
    store.claim = async (...args: Parameters<typeof store.claim>): Promise<ClaimResult> => {
      const result = await realClaim(...args);
      if (result.claimed.some((task) => task.userId === "flight")) {
        claimedWhileHeld = true;
        await new Promise<void>((resolve) => (held = resolve));
      }
      return result;
    };
    try {
      const started = await first.client.submit({ userId: "flight" });
      assert.equal(started.disposition, Disposition.STARTED);
      const queued = await first.client.submit({ userId: "flight" });
      assert.equal(queued.disposition, Disposition.QUEUED);
      // Due about 1 s later: the drainer claims it, and its reply is held.
      await pollUntil("the queued task claimed", () => claimedWhileHeld, { timeoutMs: 10_000 });

      const closing = first.server.close(300);
      await sleep(200);
      held();
      await closing;
      await sleep(300); // anything still running after close would show by now
      await assertReleased(
        redis,
        "flight",
        queued.taskId,
        await redis.lrange(keys.forUser("flight").queue("flight"), 0, -1),
      );

      const second = await startTestServer(ctx.redis.url, settings);
      try {
        await pollUntil(
          "the released task to succeed on the new server",
          async () => (await second.client.getTask({ taskId: queued.taskId })).task!.state === TaskState.SUCCEEDED,
          { timeoutMs: 20_000 },
        );
      } finally {
        await second.close();
      }
    } finally {
      held();
      store.claim = realClaim;
      await first.close();
      redis.disconnect();
    }
  });
});
