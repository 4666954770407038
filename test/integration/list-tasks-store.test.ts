// RedisStore.listTasks, under ListTasks: running tasks in start order over
// pages, while the page's last task finishes; dead letters newest first,
// records that expired left out, and the end of a listing whose cursor was
// trimmed away.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseRatePolicy } from "../../src/core/rate-policy.js";
import type { ListPage, ListState } from "../../src/core/store.js";
import { createLogger } from "../../src/logger.js";
import { connectRedis } from "../../src/redis/connection.js";
import { createRedisStore } from "../../src/redis/create-redis-store.js";
import type { RedisStore } from "../../src/redis/redis-store.js";
import { usePrivateRedis } from "../support/fixture.js";
import { keys } from "../support/store.js";

const CONFIG = {
  ratePolicy: parseRatePolicy("1000/1s"),
  maxBacklog: 100,
  leaseMs: 60_000,
  maxAttempts: 1,
  partitions: keys.partitions,
  retentionSeconds: 60,
  deadLetterRetentionSeconds: 60,
  deadLetterCap: 100,
};

async function start(store: RedisStore, userId: string): Promise<string> {
  const admission = await store.admit({
    userId,
    payload: new Uint8Array(),
    kind: "",
    idempotencyKey: "",
    rejectOverLimit: false,
    canStartNow: true,
  });
  assert.equal(admission.outcome, "started");
  return (admission as { taskId: string }).taskId;
}

/** Every page of a listing, `pageSize` at a time; `between` runs after each page but the last. */
async function pages(
  store: RedisStore,
  userId: string,
  state: ListState,
  pageSize: number,
  between: (page: ListPage) => Promise<void> = async () => {},
): Promise<string[][]> {
  const all: string[][] = [];
  let after: string | undefined;
  for (;;) {
    const page = await store.listTasks(userId, state, { pageSize, after });
    all.push(page.tasks.map((task) => task.taskId));
    if (page.next === undefined) return all;
    await between(page);
    after = page.next;
  }
}

describe("RedisStore.listTasks", () => {
  const ctx = usePrivateRedis("list-tasks-store");

  test("running: the user's only, earliest started first, over pages, though the page's last task finishes", async () => {
    const redis = await connectRedis(ctx.redis.url, createLogger("silent"));
    const store = createRedisStore(redis, CONFIG);
    try {
      const started: string[] = [];
      for (let i = 0; i < 5; i++) {
        started.push(await start(store, "ruth"));
        await start(store, `other-${i}`);
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      const listed = await pages(store, "ruth", "running", 2, async (page) => {
        const last = page.tasks.at(-1)!;
        assert.equal(
          await store.finish({ taskId: last.taskId, userId: "ruth", attempt: 1 }, { ok: true }, 0),
          "succeeded",
        );
      });
      assert.deepEqual(listed, [started.slice(0, 2), started.slice(2, 4), started.slice(4)]);
    } finally {
      store.close();
      redis.disconnect();
    }
  });

  test("dead: newest first with the last error; an expired record is left out; a trimmed cursor ends the listing", async () => {
    const redis = await connectRedis(ctx.redis.url, createLogger("silent"));
    const store = createRedisStore(redis, CONFIG);
    try {
      const dead: string[] = [];
      for (let i = 0; i < 4; i++) {
        const taskId = await start(store, "dora");
        const outcome = await store.finish(
          { taskId, userId: "dora", attempt: 1 },
          { ok: false, error: `boom ${i}` },
          0,
        );
        assert.equal(outcome, "dead");
        dead.unshift(taskId);
      }
      const first = await store.listTasks("dora", "dead", { pageSize: 2, after: undefined });
      assert.deepEqual(
        first.tasks.map((task) => [task.taskId, task.state, task.lastError, task.position]),
        [
          [dead[0], "dead", "boom 3", 0],
          [dead[1], "dead", "boom 2", 0],
        ],
      );
      assert.equal(first.next, dead[1]);
      // The third's record expired: the next page holds the fourth alone.
      await redis.del(keys.forUser("dora").task(dead[2]!));
      const second = await store.listTasks("dora", "dead", { pageSize: 2, after: first.next });
      assert.deepEqual(
        second.tasks.map((task) => task.taskId),
        [dead[3]],
      );
      assert.equal(second.next, undefined);
      // The cursor was trimmed (and everything older with it): nothing follows.
      const list = keys.forUser("dora").deadLetters("dora");
      await redis.ltrim(list, 0, 0);
      assert.deepEqual(await store.listTasks("dora", "dead", { pageSize: 2, after: dead[1] }), {
        tasks: [],
        next: undefined,
      });
      assert.deepEqual(await pages(store, "nobody", "dead", 2), [[]]);
    } finally {
      store.close();
      redis.disconnect();
    }
  });
});
