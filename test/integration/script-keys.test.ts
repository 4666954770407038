// Every script touches one slot and only keys it declares in KEYS, for user
// ids holding "{", "}" and ":" too. Redis itself checks the first on a
// Cluster (a key of another slot fails the script) but never the second (an
// undeclared key of the same slot runs), so here every script runs through
// the store with each redis.call rewritten to refuse a key not in KEYS; then
// the same operations run on a real 3-master Cluster, users in every
// partition, so every master. Every user has a policy of its own (a plan or
// an override), so the scripts resolve it from the partition's hashes.
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { parseRatePolicy } from "../../src/core/rate-policy.js";
import { userPolicy } from "../../src/core/user-policy.js";
import { createLogger } from "../../src/logger.js";
import { connectRedis, type RedisClient } from "../../src/redis/connection.js";
import { createRedisStore } from "../../src/redis/create-redis-store.js";
import { createKeys } from "../../src/redis/keys.js";
import { type BufferScripting, LuaScript } from "../../src/redis/lua-script.js";
import { RateWindows } from "../../src/redis/rate-windows.js";
import { clusterSlotOf } from "../../src/redis/partitions.js";
import type { RedisStore } from "../../src/redis/redis-store.js";
import { usePrivateRedis } from "../support/fixture.js";
import { TestRedisCluster } from "../support/redis-cluster.js";

const LUA_FILES = readdirSync(new URL("../../src/redis/lua/", import.meta.url)).filter((file) => file.endsWith(".lua"));

/** User ids that would break a layout that let them reach the hash tag or another key. */
const AWKWARD_USERS = ["{", "}", "a:b", "{tag}", "x}{y", "tg:{0}:due", "名前"];

const LEASE_MS = 300;
const CONFIG = {
  ratePolicy: parseRatePolicy("100/1s,1000/1m"),
  // A global limit that never binds here, so every start reserves units of it (and gives back unused ones).
  globalPolicy: parseRatePolicy("100000/1s"),
  maxBacklog: 100,
  leaseMs: LEASE_MS,
  maxAttempts: 2,
  partitions: 16,
  // One dead letter kept per user, so the second pushes the first out (trim-dead-letters).
  deadLetterCap: 1,
};

/**
 * Each script's source with every redis.call checked: a command's first
 * argument (its key, for every command the scripts use except the keyless
 * ones) must be one of KEYS. Redis 7 keeps the `redis` table read-only, so
 * the calls are rewritten in the source instead.
 */
function declaredKeysOnly(source: string): string {
  const prelude = `
local declaredKeys = {}
for _, key in ipairs(KEYS) do declaredKeys[key] = true end
local KEYLESS = {TIME = true, PUBLISH = true, SPUBLISH = true}
local function checkedCall(command, ...)
  local key = ...
  if not KEYLESS[string.upper(command)] and not declaredKeys[key] then
    error('undeclared key ' .. tostring(key) .. ' in ' .. command)
  end
  return redis.call(command, ...)
end
`;
  return prelude + source.replaceAll("redis.call(", "checkedCall(");
}

/**
 * The client with every EVALSHA sent as EVAL of the checked source, and the
 * scripts that ran recorded (by file), so the test knows it covered them all.
 */
function checkingClient(redis: RedisClient, ran: Set<string>): RedisClient {
  const bySha = new Map(LUA_FILES.map((file) => [new LuaScript(file).sha, file]));
  const checked = new Map(LUA_FILES.map((file) => [file, declaredKeysOnly(new LuaScript(file).source)]));
  const sourceFor = (sha: unknown): string => {
    const file = bySha.get(String(sha));
    if (!file) throw new Error(`EVALSHA of an unknown script ${String(sha)}`);
    ran.add(file);
    return checked.get(file)!;
  };
  return new Proxy(redis, {
    get(target, property) {
      if (property === "evalsha") {
        return (sha: string, numberOfKeys: number, ...rest: (string | number | Buffer)[]) =>
          target.eval(sourceFor(sha), numberOfKeys, ...rest);
      }
      if (property === "evalshaBuffer") {
        return (sha: string, numberOfKeys: number, ...rest: (string | number | Buffer)[]) =>
          (target as unknown as BufferScripting).evalBuffer(sourceFor(sha), numberOfKeys, ...rest);
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/**
 * Every store operation, so every script, for each user: start at Submit,
 * queue, duplicate, claim, fail to a retry, claim the retry, fail to a dead
 * letter, a second dead letter trimming the first at the cap, requeued and
 * dead again, purged, a lease left to expire and recovered, release, renew,
 * finish ok, the reads, cancelling (queued, waiting to retry, finished)
 * and purging the queue, and pausing (a Submit queued, one refused, a retry
 * parked by claim) and resuming, and delayed tasks (moved to the queue,
 * expired coming out of the delayed set or at the head, cancelled, purged),
 * and a kind run elsewhere (parked by one claim, taken by a claimer of it).
 */
/** A task for a worker of kind "remote", queued (never started at Submit). */
const queuedRemote = {
  payload: new Uint8Array([2]),
  kind: "remote",
  idempotencyKey: "",
  rejectOverLimit: false,
  canStartNow: false,
} as const;

async function everyOperation(store: RedisStore, redis: RedisClient, users: readonly string[]): Promise<void> {
  const keys = createKeys(undefined, CONFIG.partitions);
  const windows = new RateWindows(redis, CONFIG.ratePolicy, keys);
  const submit = (userId: string, canStartNow: boolean, idempotencyKey = "") =>
    store.admit({
      userId,
      payload: new Uint8Array([1]),
      kind: "",
      idempotencyKey,
      rejectOverLimit: false,
      canStartNow,
    });
  const claimAll = async (userId: string) =>
    (await store.claim(keys.forUser(userId).partition, 10, `c-${Math.random()}`)).claimed.filter(
      (task) => task.userId === userId,
    );
  // Policies as data: every user's windows differ from the host's (so each
  // script first declares the wrong counters and is run again with the
  // right ones), half through a plan, half through an override of their own.
  await store.policies.setPlan("wide", userPolicy("100/2s,1000/1m"));
  for (const [i, userId] of users.entries()) {
    await store.policies.setUserPolicy(
      userId,
      i % 2 === 0 ? { kind: "plan", plan: "wide" } : { kind: "override", policy: userPolicy("100/3s,1000/1m", 50) },
    );
  }
  for (const userId of users) {
    const started = await submit(userId, true, "k1");
    assert.equal(started.outcome, "started", userId);
    assert.equal((await submit(userId, true, "k1")).outcome, "duplicate", userId);
    const queued = await submit(userId, false);
    assert.equal(queued.outcome, "queued", userId);
    assert.equal(queued.taskId.split(".")[0], String(keys.forUser(userId).partition), "the id names the partition");

    // The task started at Submit is left to its lease; the queued one is claimed.
    const [claimed] = await claimAll(userId);
    assert.equal(claimed?.taskId, queued.taskId, userId);
    await sleep(5); // so the renewed lease ends later than the claimed one (ZADD CH counts changes)
    assert.equal(await store.renew([{ taskId: claimed.taskId, userId }]), 1);
    assert.equal(await store.finish(claimed, { ok: false, error: "first" }, 0), "retry-scheduled");
    const [retried] = await claimAll(userId);
    assert.equal(retried?.taskId, queued.taskId, `${userId}: the retry is claimed`);
    assert.equal(await store.finish(retried, { ok: false, error: "second" }, 0), "dead");
    assert.deepEqual(await store.deadLetterIds(userId), [queued.taskId]);
    const second = await submit(userId, false);
    assert.equal(second.outcome, "queued", userId);
    for (const error of ["third", "fourth"]) {
      const [attempt] = await claimAll(userId);
      assert.equal(attempt?.taskId, second.taskId, userId);
      await store.finish(attempt, { ok: false, error }, 0);
    }
    assert.deepEqual(await store.deadLetterIds(userId), [second.taskId], `${userId}: the first dead letter is trimmed`);
    assert.equal(await store.getTask(queued.taskId), undefined, `${userId}: and its record is gone`);

    // Requeued with fresh attempts (an id no longer on the list is not
    // found), dead again, then purged with its record.
    assert.deepEqual(await store.requeueDeadLetters(userId, [second.taskId, queued.taskId]), {
      done: 1,
      notFound: [queued.taskId],
    });
    assert.deepEqual(await store.queuedTaskIds(userId), [second.taskId], `${userId}: requeued`);
    for (const error of ["fifth", "sixth"]) {
      const [attempt] = await claimAll(userId);
      assert.equal(attempt?.taskId, second.taskId, userId);
      assert.equal(attempt.attempt, error === "fifth" ? 1 : 2, `${userId}: fresh attempts`);
      await store.finish(attempt, { ok: false, error }, 0);
    }
    assert.deepEqual(await store.deadLetterIds(userId), [second.taskId], `${userId}: dead again`);
    assert.deepEqual(await store.purgeDeadLetters(userId, "all"), { done: 1, notFound: [] });
    assert.deepEqual(await store.deadLetterIds(userId), [], `${userId}: purged`);
    assert.equal(await store.getTask(second.taskId), undefined, `${userId}: with its record`);

    await sleep(LEASE_MS + 50);
    const [recovered] = await claimAll(userId);
    assert.equal(recovered?.taskId, started.taskId, `${userId}: the expired lease's task runs again`);
    assert.equal(await store.release(recovered), "released");
    const [again] = await claimAll(userId);
    assert.equal(again?.taskId, started.taskId);
    assert.equal(await store.finish(again, { ok: true }, 0), "succeeded");

    assert.equal((await store.getTask(started.taskId))?.state, "succeeded");
    const snapshot = await store.snapshot(userId);
    assert.deepEqual([snapshot.queued, snapshot.running, snapshot.dead], [0, 0, 3], userId);
    const partition = keys.forUser(userId);
    const outcome = (await new LuaScript("admit-outcome-n.lua").run(
      redis,
      [partition.task(started.taskId), partition.queue(userId), ...windows.keysFor(userId)],
      [started.taskId],
    )) as unknown[];
    assert.equal(outcome[0], "ok");

    // Cancel: a task waiting to retry, a queued one (twice), a finished one; then purge the rest.
    const queuedId = async (): Promise<string> => {
      const admission = await submit(userId, false);
      assert.equal(admission.outcome, "queued", userId);
      return (admission as { readonly taskId: string }).taskId;
    };
    const retrying = await queuedId();
    const [failing] = await claimAll(userId);
    assert.equal(failing?.taskId, retrying, userId);
    assert.equal(await store.finish(failing, { ok: false, error: "once" }, 60_000), "retry-scheduled");
    const waiting = [await queuedId(), await queuedId(), await queuedId()];
    const middle = { taskId: waiting[1]!, userId };
    assert.equal(await store.cancelTask(middle), "cancelled", userId);
    assert.equal(await store.cancelTask(middle), "already-cancelled", userId);
    assert.equal(await store.cancelTask({ taskId: retrying, userId }), "cancelled", userId);
    assert.equal(await store.cancelTask({ taskId: started.taskId, userId }), "succeeded", userId);
    assert.equal(await store.purgeQueue(userId), 2, userId);
    assert.equal(await store.purgeQueue(userId), 0, userId);
    assert.equal((await store.getTask(waiting[2]!))?.state, "cancelled");
    // A running task whose cancel is requested ends cancelled: at finish (even ok), release, or a lost lease.
    const startedId = async (): Promise<string> => {
      const admission = await submit(userId, true);
      assert.equal(admission.outcome, "started", userId);
      return (admission as { readonly taskId: string }).taskId;
    };
    const [finishing, releasing, abandoned] = [await startedId(), await startedId(), await startedId()];
    for (const taskId of [finishing, releasing, abandoned])
      assert.equal(await store.cancelTask({ taskId, userId }), "cancel-requested", userId);
    assert.equal(await store.finish({ taskId: finishing, userId, attempt: 1 }, { ok: true }, 0), "cancelled");
    assert.equal(await store.release({ taskId: releasing, userId, attempt: 1 }), "cancelled");
    await sleep(LEASE_MS + 50);
    const recovery = await store.claim(keys.forUser(userId).partition, 10, `c-${Math.random()}`);
    assert.deepEqual(
      recovery.claimed.filter((task) => task.userId === userId),
      [],
      `${userId}: a cancelled task's lost lease does not run it again`,
    );
    assert.ok((recovery.cancelled ?? 0) >= 1, `${userId}: the claim reports the task it ended cancelled`);
    for (const taskId of [finishing, releasing, abandoned])
      assert.equal((await store.getTask(taskId))?.state, "cancelled", `${userId}: ${taskId}`);
    const purged = await store.snapshot(userId);
    assert.deepEqual([purged.queued, purged.running, purged.dueAt], [0, 0, undefined], userId);
    // Two cancelled, two purged, and the three running ones their attempt's end cancelled.
    assert.equal(purged.cancelled, 7, `${userId}: every task that ended cancelled is counted`);

    // Pause: a running task fails to a retry, a Submit that could start queues, REJECT is
    // refused, and claim starts nothing (it moves the retry to the queue and parks the user).
    const running = await startedId();
    assert.deepEqual(await store.pauseQueue(userId), { queued: 0 }, userId);
    assert.deepEqual(await store.pauseQueue(userId), { queued: 0 }, `${userId}: idempotent`);
    const held = { taskId: running, userId, attempt: 1 };
    assert.equal(await store.finish(held, { ok: false, error: "while paused" }, 0), "retry-scheduled");
    const whilePaused = await submit(userId, true);
    assert.equal(whilePaused.outcome, "queued", userId);
    const refused = await store.admit({
      userId,
      payload: new Uint8Array([1]),
      kind: "",
      idempotencyKey: "",
      rejectOverLimit: true,
      canStartNow: true,
    });
    assert.equal(refused.outcome, "paused", userId);
    assert.deepEqual(await claimAll(userId), [], `${userId}: nothing of a paused user starts`);
    const paused = await store.snapshot(userId);
    assert.deepEqual([paused.paused, paused.queued, paused.dueAt], [true, 2, undefined], userId);
    assert.deepEqual(await store.resumeQueue(userId), { queued: 2 }, userId);
    assert.deepEqual(await store.resumeQueue(userId), { queued: 2 }, `${userId}: idempotent`);
    // One head per user per claim: two claims.
    const resumed = [...(await claimAll(userId)), ...(await claimAll(userId))];
    assert.deepEqual(
      resumed.map((task) => task.taskId),
      [running, whilePaused.taskId],
      `${userId}: the retry, then the queued task`,
    );
    for (const task of resumed) {
      assert.equal(await store.cancelTask(task), "cancel-requested", userId);
      assert.equal(await store.finish(task, { ok: true }, 0), "cancelled", userId);
    }
    assert.equal((await store.snapshot(userId)).paused, false, userId);

    // Delayed tasks and start deadlines: claim moves a delayed task to the back of the queue
    // when its moment comes, or ends it expired (start_by past), and ends a queued head past
    // its start_by expired; cancel and purge reach a delayed task.
    const later = (notBefore: number | undefined, startBy: number | undefined) =>
      store.admit({
        userId,
        payload: new Uint8Array([1]),
        kind: "",
        idempotencyKey: "",
        rejectOverLimit: false,
        canStartNow: false,
        ...(notBefore === undefined ? {} : { notBefore }),
        ...(startBy === undefined ? {} : { startBy }),
      });
    const moment = Date.now() + 300;
    const headTooLate = await later(undefined, Date.now() + 50);
    const delayed = await later(moment, undefined);
    const delayedTooLate = await later(moment, moment + 10);
    const cancelledLater = await later(Date.now() + 60_000, undefined);
    const purgedLater = await later(Date.now() + 60_000, undefined);
    for (const admission of [headTooLate, delayed, delayedTooLate, cancelledLater, purgedLater])
      assert.equal(admission.outcome, "queued", userId);
    const taskIdOf = (admission: Awaited<ReturnType<typeof later>>) =>
      (admission as { readonly taskId: string }).taskId;
    assert.equal((await store.snapshot(userId)).queued, 5, `${userId}: delayed tasks count as queued`);
    assert.equal(await store.cancelTask({ taskId: taskIdOf(cancelledLater), userId }), "cancelled", userId);
    await sleep(400);
    const first = await store.claim(keys.forUser(userId).partition, 10, `c-${Math.random()}`);
    assert.deepEqual(
      first.claimed.filter((task) => task.userId === userId),
      [],
      `${userId}: the head expired`,
    );
    assert.equal(first.expired, 2, userId);
    for (const admission of [headTooLate, delayedTooLate])
      assert.equal((await store.getTask(taskIdOf(admission)))?.state, "expired", userId);
    const undelayed = await claimAll(userId);
    assert.deepEqual(
      undelayed.map((task) => task.taskId),
      [taskIdOf(delayed)],
      userId,
    );
    assert.equal(await store.cancelTask(undelayed[0]!), "cancel-requested", userId);
    assert.equal(await store.finish(undelayed[0]!, { ok: true }, 0), "cancelled", userId);
    assert.equal(await store.purgeQueue(userId), 1, userId);

    // Kinds run elsewhere (remote workers): a claim that routes parks the
    // user under the head's kind; a claimer of that kind takes it from
    // there; one parked whose queue was purged meanwhile is let go.
    const userPartition = keys.forUser(userId).partition;
    const router = { kinds: [""], routes: true };
    const remote = { kinds: ["remote"], routes: false };
    const forRemote = await store.admit({ ...queuedRemote, userId });
    assert.equal(forRemote.outcome, "queued", userId);
    const routed = await store.claim(userPartition, 10, `c-${Math.random()}`, router);
    assert.deepEqual(
      routed.claimed.filter((task) => task.userId === userId),
      [],
      `${userId}: parked, not claimed`,
    );
    const taken = (await store.claim(userPartition, 10, `c-${Math.random()}`, remote)).claimed;
    assert.deepEqual(
      taken.filter((task) => task.userId === userId).map((task) => task.taskId),
      [(forRemote as { readonly taskId: string }).taskId],
      userId,
    );
    assert.equal(await store.finish(taken.find((task) => task.userId === userId)!, { ok: true }, 0), "succeeded");
    assert.equal((await store.admit({ ...queuedRemote, userId })).outcome, "queued", userId);
    await store.claim(userPartition, 10, `c-${Math.random()}`, router);
    assert.equal(await store.purgeQueue(userId), 1, userId);
    assert.deepEqual((await store.claim(userPartition, 10, `c-${Math.random()}`, remote)).claimed, [], userId);
    const none = await store.snapshot(userId);
    assert.deepEqual([none.queued, none.running, none.expired], [0, 0, 2], userId);
  }
  const all = await store.snapshotAll();
  assert.equal(all.succeeded, 2 * users.length);
  assert.equal(all.expired, 2 * users.length);
  assert.equal(all.queued, 0);
  assert.equal(await store.droppedDeadLetters(), users.length);
}

describe("every script declares every key it touches", () => {
  const ctx = usePrivateRedis("script-keys");

  test("with awkward user ids, no script touches a key outside KEYS", async () => {
    const redis = await connectRedis(ctx.redis.url, createLogger("silent"));
    const ran = new Set<string>();
    const checking = checkingClient(redis, ran);
    const store = createRedisStore(checking, CONFIG);
    try {
      await everyOperation(store, checking, AWKWARD_USERS);
      // The check itself works: a script reaching past KEYS fails.
      await assert.rejects(
        checking.eval(declaredKeysOnly("return redis.call('GET', 'not-declared')"), 0),
        /undeclared key not-declared/,
      );
      assert.deepEqual([...ran].sort(), [...LUA_FILES].sort(), "every script ran");
    } finally {
      store.close();
      redis.disconnect();
    }
  });
});

describe("on a Redis Cluster, users in every partition", () => {
  let cluster: TestRedisCluster;
  before(async () => {
    cluster = await TestRedisCluster.start({ replicasPerMaster: 0 });
  });
  after(async () => {
    await cluster?.stop();
  });

  test("every operation runs (one slot per script), and the partitions are on every master", async () => {
    const keys = createKeys(undefined, CONFIG.partitions);
    // One user per partition, found by trying names.
    const users: string[] = [];
    for (let i = 0; users.length < CONFIG.partitions; i++) {
      const userId = `${AWKWARD_USERS[i % AWKWARD_USERS.length]}-${i}`;
      if (!users.some((user) => keys.forUser(user) === keys.forUser(userId))) users.push(userId);
    }
    const redis = await connectRedis(cluster.url, createLogger("silent"));
    const store = createRedisStore(redis, CONFIG);
    try {
      await everyOperation(store, redis, users);
      const masters = new Set<number>();
      for (const partition of keys.all) {
        masters.add(await cluster.masterOf(clusterSlotOf(partition.dueUsers)));
      }
      assert.equal(masters.size, 3, "the 16 partitions are spread over all 3 masters");
    } finally {
      store.close();
      redis.disconnect();
    }
  });
});
