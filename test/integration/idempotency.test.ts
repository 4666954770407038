// Idempotency keys: a repeated idempotency key answers
// DISPOSITION_DUPLICATE with the first task's id and stores nothing new; the
// same key for a different user is independent.
import assert from "node:assert/strict";
import { test } from "node:test";
import { useTestServer } from "../support/fixture.js";
import { keys, snapshot } from "../support/store.js";
import { Disposition, OverLimit } from "../../gen/ts/tollgate/v1/task_service_pb.js";

// Long windows: nothing resets or drains while the file runs.
const ctx = useTestServer("idempotency", { TOLLGATE_RATE_LIMITS: "1/1h" });

test("a repeated key for a started task: DUPLICATE with the first id, nothing new stored, no window unit used", async () => {
  const { client, config, redis } = ctx.tollgate;
  const first = await client.submit({ userId: "alice", idempotencyKey: "order-1", payload: new Uint8Array([1]) });
  assert.equal(first.disposition, Disposition.STARTED);
  const before = await snapshot(redis, "alice", config.ratePolicy);
  for (let i = 0; i < 3; i++) {
    const again = await client.submit({ userId: "alice", idempotencyKey: "order-1", payload: new Uint8Array([2]) });
    assert.equal(again.disposition, Disposition.DUPLICATE, `repeat #${i + 1}`);
    assert.equal(again.taskId, first.taskId, "the first task's id");
    assert.equal(again.queuePosition, 0);
  }
  assert.deepEqual(await snapshot(redis, "alice", config.ratePolicy), before, "nothing new in Redis");
  assert.equal(await redis.get(keys.forUser("alice").idempotency("alice", "order-1")), first.taskId);
});

test("a repeated key for a queued task: DUPLICATE with the first id, the queue does not grow", async () => {
  const { client, config, redis } = ctx.tollgate;
  const first = await client.submit({ userId: "alice", idempotencyKey: "order-2" });
  assert.equal(first.disposition, Disposition.QUEUED);
  const before = await snapshot(redis, "alice", config.ratePolicy);
  const again = await client.submit({ userId: "alice", idempotencyKey: "order-2" });
  assert.equal(again.disposition, Disposition.DUPLICATE);
  assert.equal(again.taskId, first.taskId);
  assert.deepEqual(await snapshot(redis, "alice", config.ratePolicy), before, "nothing new in Redis");
  assert.deepEqual(
    before.queue.filter((id) => id === first.taskId),
    [first.taskId],
    "queued once",
  );
});

test("a repeat with over_limit=REJECT while over the limit is still a DUPLICATE, not an error", async () => {
  const { client } = ctx.tollgate;
  const first = await client.submit({ userId: "alice", idempotencyKey: "order-1" });
  const again = await client.submit({ userId: "alice", idempotencyKey: "order-1", overLimit: OverLimit.REJECT });
  assert.equal(again.disposition, Disposition.DUPLICATE);
  assert.equal(again.taskId, first.taskId);
});

test("the same key for another user is independent", async () => {
  const { client } = ctx.tollgate;
  const alices = await client.submit({ userId: "alice", idempotencyKey: "shared-key" });
  const bobs = await client.submit({ userId: "bob", idempotencyKey: "shared-key" });
  assert.notEqual(alices.disposition, Disposition.DUPLICATE);
  assert.equal(bobs.disposition, Disposition.STARTED, "bob's first task starts");
  assert.notEqual(bobs.taskId, alices.taskId);
  const bobsAgain = await client.submit({ userId: "bob", idempotencyKey: "shared-key" });
  assert.equal(bobsAgain.disposition, Disposition.DUPLICATE);
  assert.equal(bobsAgain.taskId, bobs.taskId, "bob's duplicate answers bob's task, not alice's");
});

test("user and key cannot be shifted into each other: (a, b:c) and (a:b, c) are different", async () => {
  const { client } = ctx.tollgate;
  const one = await client.submit({ userId: "a", idempotencyKey: "b:c" });
  const two = await client.submit({ userId: "a:b", idempotencyKey: "c" });
  assert.equal(one.disposition, Disposition.STARTED);
  assert.equal(two.disposition, Disposition.STARTED);
  assert.notEqual(one.taskId, two.taskId);
});

test("without a key, identical Submits are separate tasks", async () => {
  const { client } = ctx.tollgate;
  const one = await client.submit({ userId: "carol", payload: new Uint8Array([9]) });
  const two = await client.submit({ userId: "carol", payload: new Uint8Array([9]) });
  assert.equal(one.disposition, Disposition.STARTED);
  assert.equal(two.disposition, Disposition.QUEUED);
  assert.notEqual(one.taskId, two.taskId);
});
