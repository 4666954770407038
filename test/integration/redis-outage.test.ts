// A Redis outage: with Redis gone, Submit answers UNAVAILABLE at once (not
// after the command timeout) and health goes NOT_SERVING; when Redis comes back (same port, same
// data) health is SERVING again and Submit works, without restarting the
// server.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code } from "@connectrpc/connect";
import { expectCode, pollUntil } from "../support/expect.js";
import { checkStatus, healthClient } from "../support/health.js";
import { useTestServer } from "../support/fixture.js";
import { Disposition } from "../../gen/ts/tollgate/v1/task_service_pb.js";

const SERVICES = ["", "tollgate.v1.TaskService"];

const ctx = useTestServer("outage", { TOLLGATE_RATE_LIMITS: "1/1h" });

test("Redis stops and returns: UNAVAILABLE and NOT_SERVING, then SERVING and Submit again", async () => {
  const health = healthClient(ctx.tollgate.address);
  const { client } = ctx.tollgate;
  for (const service of SERVICES) assert.equal(await checkStatus(health, service), "SERVING", `"${service}" before`);
  const before = await client.submit({ userId: "survivor" });
  assert.equal(before.disposition, Disposition.STARTED);
  const queuedBefore = await client.submit({ userId: "survivor" });
  assert.equal(queuedBefore.disposition, Disposition.QUEUED);

  await ctx.redis.stop();

  const started = Date.now();
  const error = await expectCode(client.submit({ userId: "survivor" }), Code.Unavailable, "Submit with Redis stopped");
  // Answered at once: no offline queue holds the command. 1.5 s leaves room
  // for a loaded machine and still fails a call that waits out the 2 s
  // command timeout (or the client's deadline).
  const elapsed = Date.now() - started;
  assert.ok(elapsed < 1_500, `UNAVAILABLE came after ${elapsed} ms; it must come before the 2 s command timeout`);
  assert.ok(error.rawMessage.length > 0, "the status has a message");
  // GetTask needs Redis too.
  await expectCode(client.getTask({ taskId: before.taskId }), Code.Unavailable, "GetTask with Redis stopped");

  for (const service of SERVICES) {
    await pollUntil(`"${service}" NOT_SERVING`, async () => (await checkStatus(health, service)) === "NOT_SERVING", {
      timeoutMs: 10_000,
    });
  }
  // Every call while Redis is away keeps answering promptly.
  for (let i = 0; i < 3; i++) {
    const t0 = Date.now();
    await expectCode(client.submit({ userId: "survivor", idempotencyKey: `k${i}` }), Code.Unavailable);
    assert.ok(Date.now() - t0 < 1_500, `Submit #${i + 2} with Redis stopped took ${Date.now() - t0} ms`);
  }

  await ctx.redis.start();

  for (const service of SERVICES) {
    await pollUntil(`"${service}" SERVING again`, async () => (await checkStatus(health, service)) === "SERVING", {
      timeoutMs: 20_000,
    });
  }
  const again = await client.submit({ userId: "newcomer" });
  assert.equal(again.disposition, Disposition.STARTED, "Submit works again on the same server");
  // Same data: what was stored before the outage is still there, and the
  // calls that failed during it stored nothing.
  const queued = await client.submit({ userId: "survivor" });
  assert.equal(queued.disposition, Disposition.QUEUED);
  assert.equal(queued.queuePosition, 2, "the task queued before the outage is still first in line");
  const { task } = await client.getTask({ taskId: queuedBefore.taskId });
  assert.equal(task?.userId, "survivor");
});

test("Redis at its maxmemory: Submit is UNAVAILABLE saying the store is full, and nothing is stored", async () => {
  const { client } = ctx.tollgate;
  const admin = ctx.redis.client();
  try {
    await pollUntil("Redis back", async () => (await admin.ping().catch(() => "")) === "PONG", { timeoutMs: 15_000 });
    const used = Number(/used_memory:(\d+)/.exec(await admin.info("memory"))![1]);
    await admin.config("SET", "maxmemory", String(used - 1024 * 1024 > 0 ? Math.max(1, used - 1024 * 1024) : 1));
    const keysBefore = await admin.dbsize();
    const error = await expectCode(client.submit({ userId: "full" }), Code.Unavailable, "Submit with Redis full");
    assert.match(error.rawMessage, /full \(maxmemory reached\); nothing was stored/);
    assert.equal(await admin.dbsize(), keysBefore, "no key was written");
  } finally {
    await admin.config("SET", "maxmemory", "0");
    admin.disconnect();
  }
});
