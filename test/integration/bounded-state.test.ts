// Bounded state: users ever seen cost nothing. 200 users, each through one of
// the ways a task ends (started at Submit and succeeded, queued and retried,
// dead-lettered by a handler's failure, dead-lettered when its lease ran out
// on the last attempt), some of them past a dead-letter cap of 2; then, with
// retentions of a few seconds, every key that is not documented as
// permanent (keys.ts permanentKeys) must be gone, found by SCAN over the
// whole keyspace. Meanwhile no key may lack an expiry unless it is permanent
// or still in use, and a dead letter trimmed at the cap must leave no record.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { parseRatePolicy } from "../../src/core/rate-policy.js";
import type { RedisStore } from "../../src/redis/redis-store.js";
import { createLogger } from "../../src/logger.js";
import { connectRedis, type RedisClient } from "../../src/redis/connection.js";
import { createRedisStore } from "../../src/redis/create-redis-store.js";
import { createKeys, permanentKeys } from "../../src/redis/keys.js";
import { pollUntil } from "../support/expect.js";
import { usePrivateRedis } from "../support/fixture.js";

const PARTITIONS = 16;
const LEASE_MS = 300;
const DEAD_LETTER_CAP = 2;
const CONFIG = {
  ratePolicy: parseRatePolicy("1000/1s"),
  maxBacklog: 100,
  leaseMs: LEASE_MS,
  maxAttempts: 2,
  partitions: PARTITIONS,
  retentionSeconds: 2,
  deadLetterRetentionSeconds: 3,
  deadLetterCap: DEAD_LETTER_CAP,
};
const keys = createKeys(undefined, PARTITIONS);
const PERMANENT = new Set(permanentKeys(keys));

/** Every key in Redis, by SCAN (as an operator would look, not KEYS). */
async function everyKey(redis: RedisClient): Promise<string[]> {
  const found: string[] = [];
  let cursor = "0";
  do {
    const [next, batch] = await redis.scan(cursor, "COUNT", 1000);
    found.push(...batch);
    cursor = next;
  } while (cursor !== "0");
  return found.sort();
}

const submit = (store: RedisStore, userId: string, canStartNow: boolean, idempotencyKey = "") =>
  store.admit({ userId, payload: new Uint8Array([7]), kind: "", idempotencyKey, rejectOverLimit: false, canStartNow });

/** Claims from every partition once. */
async function claimEverywhere(store: RedisStore) {
  const claims = await Promise.all(
    keys.all.map((p) => store.claim(p.partition, 100, `c-${p.partition}-${Math.random()}`)),
  );
  return claims.flatMap((claim) => claim.claimed);
}

describe("bounded state: a finished user holds no key past the retention", () => {
  const ctx = usePrivateRedis("bounded-state");

  test("200 users, some dead-lettered and trimmed at the cap: only the permanent keys remain", async () => {
    const redis = await connectRedis(ctx.redis.url, createLogger("silent"));
    const store = createRedisStore(redis, CONFIG);
    // One attempt per task: a failure dead-letters at once.
    const oneAttempt = createRedisStore(redis, { ...CONFIG, maxAttempts: 1 });
    try {
      const users = Array.from({ length: 200 }, (_, i) => `user-${i}`);
      const trimmed: string[] = [];
      const kept = new Map<string, string[]>();

      // 0–139: started at Submit (every tenth with an idempotency key), succeeded.
      for (const userId of users.slice(0, 140)) {
        const started = await submit(store, userId, true, Number(userId.slice(5)) % 10 === 0 ? "once" : "");
        assert.equal(started.outcome, "started", userId);
        assert.equal(await store.finish({ taskId: started.taskId, userId, attempt: 1 }, { ok: true }, 0), "succeeded");
      }

      // 140–169: queued, claimed, failed once, retried, succeeded.
      const queuedUsers = users.slice(140, 170);
      for (const userId of queuedUsers) assert.equal((await submit(store, userId, false)).outcome, "queued");
      for (const result of [{ ok: false, error: "once" } as const, { ok: true } as const]) {
        const claimed: Awaited<ReturnType<typeof claimEverywhere>> = [];
        await pollUntil("every queued user's task claimed", async () => {
          claimed.push(...(await claimEverywhere(store)));
          return claimed.length === queuedUsers.length;
        });
        for (const task of claimed) await store.finish(task, result, 0);
      }

      // 170–189: four tasks each dead-lettered by their handler's failure; the cap keeps two.
      for (const userId of users.slice(170, 190)) {
        const ids: string[] = [];
        for (let n = 0; n < 4; n++) {
          const started = await submit(oneAttempt, userId, true);
          assert.equal(started.outcome, "started", userId);
          const outcome = await oneAttempt.finish(
            { taskId: started.taskId, userId, attempt: 1 },
            { ok: false, error: "no" },
            0,
          );
          assert.equal(outcome, "dead");
          ids.push(started.taskId);
        }
        trimmed.push(...ids.slice(0, 2));
        kept.set(userId, ids.slice(2).reverse());
      }

      // 190–199: three tasks each whose lease runs out on the last attempt: the claim dead-letters them.
      const leaseUsers = users.slice(190);
      // Which of a user's three goes first depends on the order the claim recovers them in.
      const leaseTasks = new Map<string, string[]>();
      for (const userId of leaseUsers) {
        const ids: string[] = [];
        for (let n = 0; n < 3; n++) {
          const started = await submit(oneAttempt, userId, true);
          assert.equal(started.outcome, "started", userId);
          ids.push(started.taskId);
        }
        leaseTasks.set(userId, ids);
      }
      let deadLettered = 0;
      await pollUntil(
        "every lease recovered and dead-lettered",
        async () => {
          const claims = await Promise.all(keys.all.map((p) => oneAttempt.claim(p.partition, 0, `r-${Math.random()}`)));
          for (const claim of claims) deadLettered += claim.deadLettered ?? 0;
          const leases = await Promise.all(keys.all.map((p) => redis.zcard(p.leases)));
          return leases.every((count) => count === 0);
        },
        { timeoutMs: 30_000, intervalMs: LEASE_MS },
      );

      assert.equal(deadLettered, leaseUsers.length * 3, "the claims say how many they dead-lettered");
      for (const [userId, ids] of leaseTasks) {
        const listed = await store.deadLetterIds(userId);
        assert.equal(listed.length, DEAD_LETTER_CAP, userId);
        trimmed.push(...ids.filter((id) => !listed.includes(id)));
        kept.set(userId, listed);
      }

      // The cap: the newest two dead letters kept, the rest gone with their records.
      for (const [userId, ids] of kept) assert.deepEqual(await store.deadLetterIds(userId), ids, userId);
      for (const taskId of trimmed) assert.equal(await store.getTask(taskId), undefined, `${taskId} was trimmed`);
      assert.equal(await store.droppedDeadLetters(), trimmed.length);
      const deadRecords = [];
      for (const ids of kept.values()) for (const taskId of ids) deadRecords.push(await store.getTask(taskId));
      assert.ok(
        deadRecords.every((record) => record?.state === "dead"),
        "every dead letter on a list has its record",
      );

      // 10 more users: a task delayed 200 ms that then runs, and one delayed as long that
      // expires (start_by 50 ms after its moment, before the claim comes).
      const delayedUsers = Array.from({ length: 10 }, (_, i) => `delayed-${i}`);
      const moment = Date.now() + 200;
      for (const userId of delayedUsers) {
        for (const startBy of [undefined, moment + 50]) {
          const admission = await store.admit({
            userId,
            payload: new Uint8Array([7]),
            kind: "",
            idempotencyKey: "",
            rejectOverLimit: false,
            canStartNow: true,
            notBefore: moment,
            ...(startBy === undefined ? {} : { startBy }),
          });
          assert.equal(admission.outcome, "queued", userId);
        }
      }
      await sleep(400);
      const undelayed: Awaited<ReturnType<typeof claimEverywhere>> = [];
      await pollUntil("every delayed user's task claimed", async () => {
        undelayed.push(...(await claimEverywhere(store)));
        return undelayed.length === delayedUsers.length;
      });
      for (const task of undelayed) assert.equal(await store.finish(task, { ok: true }, 0), "succeeded");
      // Read at once, within the 2 s retention even on a loaded machine: the
      // user whose task finished last (user-0's may have expired by now).
      const before = await store.snapshot(undelayed.at(-1)!.userId);
      assert.equal(before.succeeded, 1);
      assert.equal(before.expired, 1, "its other task expired");
      assert.ok(before.generation > 0, "the counters have a generation");

      // Nothing runs or waits: every key is permanent or ends.
      const withoutEnd: string[] = [];
      for (const key of await everyKey(redis)) {
        if (!PERMANENT.has(key) && (await redis.ttl(key)) === -1) withoutEnd.push(key);
      }
      assert.deepEqual(withoutEnd, [], "every key not documented as permanent has an expiry");

      // Past the retentions (2 s, 3 s for dead letters; windows of 1 s; claim
      // records 15 s): only the permanent keys remain.
      const remaining = await pollUntil(
        "only the permanent keys to remain",
        async () => {
          const all = await everyKey(redis);
          return all.every((key) => PERMANENT.has(key)) ? all : false;
        },
        { timeoutMs: 60_000, intervalMs: 250 },
      );
      assert.ok(remaining.length > 0, "the totals stay");
      const all = await store.snapshotAll();
      assert.deepEqual(
        [all.queued, all.running, all.succeeded, all.dead, all.expired],
        [0, 0, 140 + queuedUsers.length + 10, 20 * 4 + 10 * 3, 10],
        "the partitions' totals are permanent and exact",
      );

      // A user seen again starts new counters, in a new generation.
      const gone = await store.snapshot("user-0");
      assert.deepEqual([gone.succeeded, gone.generation], [0, -1]);
      const again = await submit(store, "user-0", true, "once");
      assert.equal(again.outcome, "started", "the idempotency key expired with the retention");
      await store.finish({ taskId: again.taskId, userId: "user-0", attempt: 1 }, { ok: true }, 0);
      const after = await store.snapshot("user-0");
      assert.equal(after.succeeded, 1);
      assert.ok(after.generation > before.generation, "a new generation");
    } finally {
      store.close();
      oneAttempt.close();
      redis.disconnect();
    }
  });
});
