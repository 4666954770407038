// A Submit whose admit script outlives the client's command timeout (Redis
// stalled: a slow script, an fsync stall) must answer with what really
// happened: the script was sent and still runs, so "nothing was stored" would
// be a lie that makes a retry duplicate the task, and a task told UNAVAILABLE
// but stored as running would run only after its lease expired.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { Code, ConnectError } from "@connectrpc/connect";
import { createKeys } from "../../src/redis/keys.js";
import { createLogger } from "../../src/logger.js";
import { parseRatePolicy } from "../../src/core/rate-policy.js";
import { RateWindows } from "../../src/redis/rate-windows.js";
import { connectRedis } from "../../src/redis/connection.js";
import { AdmitReplyLost, type Admission } from "../../src/core/store.js";
import { RedisStore } from "../../src/redis/redis-store.js";
import { useTestServer } from "../support/fixture.js";
import { snapshot } from "../support/store.js";
import { readFixtureLog, waitUntilAllRan } from "../support/task-log.js";
import { Disposition, TaskState } from "../../gen/ts/tollgate/v1/task_service_pb.js";

const FIXTURE_HANDLERS = fileURLToPath(new URL("../fixtures/handlers.ts", import.meta.url));
const LEASE_MS = 2_000;

const ctx = useTestServer("submit-outcome", {
  // Room for every Submit to start now, several at once.
  TOLLGATE_RATE_LIMITS: "100/1s",
  TOLLGATE_CONCURRENCY: "64",
  TOLLGATE_HANDLER: FIXTURE_HANDLERS,
  // A short lease: a task stored as running but not run here would be
  // recovered and run by the drainer soon after it, so the test sees it.
  TOLLGATE_LEASE_MS: String(LEASE_MS),
});

/**
 * Keeps Redis busy for `ms` with a script on its own connection: every other
 * command waits (below busy-reply-threshold, 5 s, Redis answers no BUSY), so
 * the server's commands outlive its 2 s command timeout and then run.
 */
async function stallRedis(ms: number): Promise<void> {
  const client = ctx.redis.client();
  try {
    await client.eval(
      `local s = redis.call('TIME')
       local start = s[1] * 1000000 + s[2]
       while true do
         local t = redis.call('TIME')
         if t[1] * 1000000 + t[2] - start > tonumber(ARGV[1]) * 1000 then return 1 end
       end`,
      0,
      ms,
    );
  } finally {
    client.disconnect();
  }
}

test("Submits held up by a Redis stall past the command timeout: OK ones run, failed ones store and run nothing", async () => {
  const log = join(ctx.dir, "stall.log");
  process.env.TOLLGATE_FIXTURE_LOG = log;
  const { client, redis, config } = ctx.tollgate;
  try {
    // Redis has the admit script cached, as it has in service: a first EVALSHA
    // would otherwise be answered NOSCRIPT after the stall and store nothing.
    await client.submit({ userId: "warm-up" });
    const users = Array.from({ length: 10 }, (_, i) => `stall-${i}`);
    const stall = stallRedis(4_500);
    // Let the stall begin before the Submits reach Redis.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const results = await Promise.all(
      users.map(async (userId) => {
        try {
          const response = await client.submit({ userId }, { timeoutMs: 30_000 });
          return { userId, response };
        } catch (error) {
          return { userId, error: ConnectError.from(error) };
        }
      }),
    );
    await stall;
    const answered = results.filter((r) => r.response !== undefined);
    const refused = results.filter((r) => r.error !== undefined);
    const described = results
      .map(
        (r) =>
          `${r.userId}: ${r.response ? Disposition[r.response.disposition] : `${Code[r.error!.code]} ${r.error!.rawMessage}`}`,
      )
      .join("\n");

    // Every acknowledged task runs now, in this process, not after a lease.
    const okIds = answered.map((r) => r.response!.taskId);
    await waitUntilAllRan(log, okIds, 10_000);
    for (const id of okIds) {
      const task = (await client.getTask({ taskId: id })).task!;
      assert.equal(TaskState[task.state], "SUCCEEDED", `task ${id}\n${described}`);
      assert.equal(task.attempts, 1, `task ${id} ran once, not again after a lease ran out\n${described}`);
    }

    // A refused Submit stored nothing, so nothing of it ever runs, even after
    // a lease would have run out and the drainer recovered it.
    await new Promise((resolve) => setTimeout(resolve, LEASE_MS + 1_500));
    const ran = new Set((await readFixtureLog(log)).map((start) => start.userId));
    const refusedButRan = refused.filter((r) => ran.has(r.userId)).map((r) => r.userId);
    assert.deepEqual(
      refusedButRan,
      [],
      `${refusedButRan.length} of ${refused.length} refused Submits' tasks ran\n${described}`,
    );
    for (const { userId, error } of refused) {
      assert.equal(Code[error!.code], "Unavailable", `${userId}: ${error!.rawMessage}`);
      assert.deepEqual(
        (await snapshot(redis, userId, config.ratePolicy)).userKeys,
        [],
        `${userId}: nothing stored\n${described}`,
      );
    }
    assert.ok(
      answered.length > 0,
      `the stall left every Submit's outcome unknown; the test proves nothing\n${described}`,
    );
    // Fresh users, free slots and room in the windows: each started at once.
    for (const { userId, response } of answered) assert.equal(Disposition[response!.disposition], "STARTED", userId);
  } finally {
    delete process.env.TOLLGATE_FIXTURE_LOG;
  }
});

/**
 * admit on its own (no server, keys under their own prefix so the server's
 * drainer leaves them alone) over a connection with a 200 ms command timeout,
 * so each outcome of a lost reply is quick to reach.
 */
async function withQueue(
  work: (queue: RedisStore, stall: (ms: number) => Promise<void>) => Promise<void>,
): Promise<void> {
  const redis = await connectRedis(ctx.redis.url, createLogger("silent"), { commandTimeoutMs: 200 });
  const keys = createKeys("lost");
  const queue = new RedisStore(redis, keys, new RateWindows(redis, parseRatePolicy("1/1h"), keys), {
    maxBacklog: 100,
    leaseMs: 30_000,
    maxAttempts: 3,
    deadLetterCap: 100,
    retentionSeconds: 60,
    deadLetterRetentionSeconds: 60,
  });
  const stalls: Promise<void>[] = [];
  const stall = async (ms: number): Promise<void> => {
    stalls.push(stallRedis(ms));
    await new Promise((resolve) => setTimeout(resolve, 50));
  };
  try {
    // Loads the script, as in service (its first EVALSHA would be NOSCRIPT).
    await queue.admit(submission("warm-up"));
    await work(queue, stall);
  } finally {
    await Promise.allSettled(stalls);
    redis.disconnect();
  }
}

function submission(userId: string) {
  return { userId, payload: new Uint8Array(), kind: "", idempotencyKey: "", rejectOverLimit: false, canStartNow: true };
}

async function lostReply(admitted: Promise<Admission>): Promise<AdmitReplyLost> {
  try {
    const admission = await admitted;
    assert.fail(`expected AdmitReplyLost, got ${JSON.stringify(admission)}`);
  } catch (error) {
    if (!(error instanceof AdmitReplyLost)) throw error;
    return error;
  }
}

test("admit whose reply is lost to a stall answers what the script did: started, or queued with its position", async () => {
  await withQueue(async (queue, stall) => {
    await queue.admit(submission("ahead")); // uses the user's one start an hour
    await stall(700);
    const [started, queued] = await Promise.all([queue.admit(submission("fresh")), queue.admit(submission("ahead"))]);
    assert.equal(started.outcome, "started");
    assert.equal(queued.outcome, "queued");
    assert.equal(queued.outcome === "queued" && queued.position, 1);
    assert.equal(queued.outcome === "queued" && queued.windows[0]!.count, 1, "the window as it is");
  });
});

test("admit whose reply is lost and whose script stored nothing (NOSCRIPT after a stall) says it was not stored", async () => {
  await withQueue(async (queue, stall) => {
    const flusher = ctx.redis.client();
    await flusher.script("FLUSH");
    flusher.disconnect();
    await stall(500);
    const lost = await lostReply(queue.admit(submission("flushed")));
    assert.equal(lost.stored, "no");
    assert.equal(await ctx.tollgate.redis.exists(createKeys("lost").forTask(lost.taskId)!.task(lost.taskId)), 0);
  });
});

test("admit whose reply and record stay unanswered past the budget says the outcome is unknown", async () => {
  let taskId = "";
  await withQueue(async (queue, stall) => {
    // 200 ms timeout + 3 x 200 ms of reads: a 1.5 s stall outlasts them.
    await stall(1_500);
    const lost = await lostReply(queue.admit(submission("unknown")));
    assert.equal(lost.stored, "unknown");
    taskId = lost.taskId;
  });
  // The script ran once the stall ended: "unknown" was the truth, "not stored" would have been a lie.
  assert.equal(await ctx.tollgate.redis.hget(createKeys("lost").forTask(taskId)!.task(taskId), "s"), "r");
});
