// TOLLGATE_REPLICA_ACKS=1 on a master and its replica (two private
// redis-server processes): Submit answers once the replica has the task; with
// the replica stopped, WAIT times out and Submit answers UNAVAILABLE saying
// the task is stored but not replicated, and a retry with the same
// idempotency key answers DUPLICATE (the same task) once the replica is back;
// every change short of its replicas is counted in a metric.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Code } from "@connectrpc/connect";
import { Redis } from "ioredis";
import { Disposition, TaskState } from "../../gen/ts/tollgate/v1/task_service_pb.js";
import { expectCode, pollUntil } from "../support/expect.js";
import { TestRedis } from "../support/redis.js";
import { metrics } from "../../src/metrics.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { keys } from "../support/store.js";

const ACK_TIMEOUT_MS = 200;

/**
 * Waits until the replica acknowledges a write: "online" in the master's
 * INFO comes before the replica has loaded the first sync and answers acks.
 */
async function replicaOnline(master: TestRedis): Promise<void> {
  const client = master.client();
  try {
    await pollUntil("the replica to acknowledge a write", async () => {
      await client.set("replica-probe", String(Date.now()));
      return (await client.wait(1, 100)) === 1;
    });
  } finally {
    client.disconnect();
  }
}

let master: TestRedis;
let replica: TestRedis;
let tollgate: TestServer;

before(async () => {
  master = await TestRedis.start();
  // The first sync starts at once, not after the default 5 s gathering of replicas.
  const client = master.client();
  await client.config("SET", "repl-diskless-sync-delay", "0");
  client.disconnect();
  // No append-only file on the replica: it only needs to acknowledge, and
  // with one it did not stop in time at the end of the file.
  replica = await TestRedis.start(["--appendonly", "no", "--replicaof", "127.0.0.1", String(master.port)]);
  await replicaOnline(master);
  tollgate = await startTestServer(master.url, {
    TOLLGATE_REPLICA_ACKS: "1",
    TOLLGATE_REPLICA_ACK_TIMEOUT_MS: String(ACK_TIMEOUT_MS),
    TOLLGATE_RATE_LIMITS: "1/1h",
  });
});

after(async () => {
  await tollgate?.close();
  await replica?.stop();
  await master?.stop();
});

test("with the replica in sync, Submit answers as usual, and the task is on the replica", async () => {
  const reply = await tollgate.client.submit({ userId: "alice", idempotencyKey: "first" });
  assert.equal(reply.disposition, Disposition.STARTED);
  const queued = await tollgate.client.submit({ userId: "alice" });
  assert.equal(queued.disposition, Disposition.QUEUED);
  // WAIT returned 1, so the replica had both before Submit answered.
  const onReplica = new Redis(`redis://127.0.0.1:${replica.port}`, { maxRetriesPerRequest: 1 });
  try {
    const taskKey = (taskId: string): string => keys.forTask(taskId)!.task(taskId);
    assert.equal(await onReplica.exists(taskKey(reply.taskId), taskKey(queued.taskId)), 2);
  } finally {
    onReplica.disconnect();
  }
});

test("with the replica stopped: UNAVAILABLE, stored but not replicated; the same key answers DUPLICATE once it is back", async () => {
  await replica.stop();
  const started = Date.now();
  const error = await expectCode(
    tollgate.client.submit({ userId: "bob", idempotencyKey: "order-7" }),
    Code.Unavailable,
    "Submit without its replica",
  );
  assert.match(error.rawMessage, /stored on the Redis primary but not yet replicated \(0 of 1 replicas/);
  assert.match(error.rawMessage, /retry with the same idempotency key/);
  assert.ok(Date.now() - started >= ACK_TIMEOUT_MS - 20, "it waited for the replica");
  const taskId = /task (\S+) is stored/.exec(error.rawMessage)?.[1];
  assert.ok(taskId, "the message names the task");
  // Stored on the master: GetTask finds it.
  const { task } = await tollgate.client.getTask({ taskId });
  assert.ok(task && [TaskState.RUNNING, TaskState.SUCCEEDED].includes(task.state), `state ${task?.state}`);

  // Still no replica: the retry finds the task but cannot confirm it either.
  await expectCode(tollgate.client.submit({ userId: "bob", idempotencyKey: "order-7" }), Code.Unavailable, "retry");

  await replica.start();
  await replicaOnline(master);
  const retried = await pollUntil("the retry to be confirmed", async () => {
    try {
      return await tollgate.client.submit({ userId: "bob", idempotencyKey: "order-7" });
    } catch {
      return undefined;
    }
  });
  assert.equal(retried.disposition, Disposition.DUPLICATE);
  assert.equal(retried.taskId, taskId, "the first task, not a second one");
});

test("changes short of their replicas are counted by kind: Submit's admit, and the finish of the task it started", async () => {
  const counted = async (change: string): Promise<number> =>
    (await metrics.shortOfReplicas.get()).values.find((value) => value.labels.change === change)?.value ?? 0;
  const before = { admit: await counted("admit"), finish: await counted("finish") };
  await replica.stop();
  try {
    await expectCode(tollgate.client.submit({ userId: "carol" }), Code.Unavailable, "Submit without its replica");
    assert.equal(await counted("admit"), before.admit + 1);
    // The task started at Submit; its finish waits for the replica in vain too.
    await pollUntil("the finish to be counted", async () => (await counted("finish")) > before.finish);
  } finally {
    await replica.start();
    await replicaOnline(master);
  }
});
