// CancelTask and PurgeQueue: a queued task leaves its queue and the rest
// close up; the head's place goes to the next, which still starts when the
// policy allows; a task waiting to retry leaves the retry schedule; a
// finished or running task is refused; purging empties a queue and takes the
// user off the due schedule; who may cancel whose tasks.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Code, type Client } from "@connectrpc/connect";
import { createTollgateClient } from "../../src/client/client.js";
import { expectCode, pollUntil } from "../support/expect.js";
import { usePrivateRedis } from "../support/fixture.js";
import { ADMIN_KEY, ALICE_KEY, BOB_KEY, writeKeyFile } from "../support/api-keys.js";
import { firstSnapshot } from "../support/watch.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { keys } from "../support/store.js";
import { Disposition, ListState, type TaskService, TaskState } from "../../gen/ts/tollgate/v1/task_service_pb.js";

const FIXTURE_HANDLERS = fileURLToPath(new URL("../fixtures/handlers.ts", import.meta.url));

const ctx = usePrivateRedis("cancel");

describe("CancelTask and PurgeQueue, 1/1h: queued tasks stay queued", () => {
  let tollgate: TestServer;
  const as = (key: string): Client<typeof TaskService> =>
    createTollgateClient({ baseUrl: tollgate.address, apiKey: key });

  // One user's task that starts (and runs for a minute), then `count` queued. Returns their ids.
  async function fill(client: Client<typeof TaskService>, userId: string, count: number): Promise<[string, string[]]> {
    const first = await client.submit({ userId, kind: "slow", payload: new TextEncoder().encode("60000") });
    assert.equal(first.disposition, Disposition.STARTED);
    const queued: string[] = [];
    for (let i = 0; i < count; i++) {
      const answer = await client.submit({ userId });
      assert.equal(answer.disposition, Disposition.QUEUED);
      queued.push(answer.taskId);
    }
    return [first.taskId, queued];
  }

  before(async () => {
    await writeKeyFile(ctx.dir);
    tollgate = await startTestServer(ctx.redis.url, {
      TOLLGATE_AUTH_KEYS: join(ctx.dir, "keys"),
      TOLLGATE_RATE_LIMITS: "1/1h",
      TOLLGATE_HANDLER: FIXTURE_HANDLERS,
      TOLLGATE_MAX_ATTEMPTS: "2",
    });
  });
  after(async () => {
    await tollgate?.close();
  });

  test("cancelling the middle queued task: the rest close up, GetTask says CANCELLED, cancelling again is OK", async () => {
    const alice = as(ALICE_KEY);
    const [, queued] = await fill(alice, "alice", 3);
    assert.equal((await firstSnapshot(alice, "alice")).queued, 3n);

    const { task } = await alice.cancelTask({ taskId: queued[1]! });
    assert.equal(task?.state, TaskState.CANCELLED);
    assert.equal(task?.taskId, queued[1]);
    assert.ok(task?.finishedAt, "finished_at is set");
    assert.equal(task?.attemptsLeft, 0);

    const listed = await alice.listTasks({ state: ListState.QUEUED });
    assert.deepEqual(
      listed.tasks.map((t) => [t.taskId, t.queuePosition]),
      [
        [queued[0], 1],
        [queued[2], 2],
      ],
    );
    assert.equal((await alice.getTask({ taskId: queued[1]! })).task?.state, TaskState.CANCELLED);
    const ttl = await tollgate.redis.ttl(keys.forUser("alice").task(queued[1]!));
    assert.ok(ttl > 0, `the record expires with the retention (ttl ${ttl})`);
    const again = await alice.cancelTask({ taskId: queued[1]! });
    assert.equal(again.task?.state, TaskState.CANCELLED);

    const snapshot = await pollUntil("WatchQueue to count 2 queued", async () => {
      const next = await firstSnapshot(alice, "alice");
      return next.queued === 2n ? next : undefined;
    });
    assert.equal(snapshot.running, 1n);
    assert.equal((await firstSnapshot(as(ADMIN_KEY), "")).queued, 2n, "the partition totals count it down too");
  });

  test("a running task: answered RUNNING and marked; its handler is aborted, and it ends CANCELLED, not retried", async () => {
    const admin = as(ADMIN_KEY);
    // A minute's handler: only its abort ends it within the poll.
    const running = await admin.submit({ userId: "carol", kind: "slow", payload: new TextEncoder().encode("60000") });
    assert.equal(running.disposition, Disposition.STARTED);
    const { task } = await admin.cancelTask({ taskId: running.taskId });
    // Answered as it was marked; the abort may end it before the answer is read.
    assert.ok(task?.state === TaskState.RUNNING || task?.state === TaskState.CANCELLED, `state ${task?.state}`);
    const ended = await pollUntil(
      "the handler to be aborted and the task to end cancelled",
      async () => {
        const answer = (await admin.getTask({ taskId: running.taskId })).task;
        return answer?.state === TaskState.CANCELLED ? answer : undefined;
      },
      { timeoutMs: 15_000 },
    );
    assert.equal(ended.attempts, 1);
    assert.equal(ended.lastError, "cancelled (CancelTask)");
    assert.ok(ended.finishedAt);
    const snapshot = await firstSnapshot(admin, "carol");
    assert.deepEqual([snapshot.queued, snapshot.running, snapshot.failed], [0n, 0n, 0n]);
    assert.equal((await admin.cancelTask({ taskId: running.taskId })).task?.state, TaskState.CANCELLED);
  });

  test("a succeeded task: FAILED_PRECONDITION; an unknown one: NOT_FOUND", async () => {
    const admin = as(ADMIN_KEY);

    const done = await admin.submit({ userId: "dave" });
    assert.equal(done.disposition, Disposition.STARTED);
    await pollUntil("the task to succeed", async () => {
      const { task } = await admin.getTask({ taskId: done.taskId });
      return task?.state === TaskState.SUCCEEDED;
    });
    const finished = await expectCode(admin.cancelTask({ taskId: done.taskId }), Code.FailedPrecondition);
    assert.equal(finished.rawMessage, `task ${done.taskId} already finished (succeeded)`);

    const unknown = done.taskId.replace(/.$/, (c) => (c === "a" ? "b" : "a"));
    await expectCode(admin.cancelTask({ taskId: unknown }), Code.NotFound);
    await expectCode(admin.cancelTask({ taskId: "nope" }), Code.InvalidArgument);
    await expectCode(admin.cancelTask({ taskId: "" }), Code.InvalidArgument);
  });

  test("a task waiting to retry leaves the retry schedule", async () => {
    const admin = as(ADMIN_KEY);
    const broken = await admin.submit({ userId: "rita", kind: "broken" });
    assert.equal(broken.disposition, Disposition.STARTED);
    await pollUntil("the first attempt to fail", async () => {
      const { task } = await admin.getTask({ taskId: broken.taskId });
      return task !== undefined && task.attempts === 1 && task.lastError !== "";
    });
    const { task } = await admin.cancelTask({ taskId: broken.taskId });
    assert.equal(task?.state, TaskState.CANCELLED);
    const partition = keys.forUser("rita");
    assert.deepEqual(await tollgate.redis.zrange(partition.retries, 0, -1), []);
    assert.deepEqual(await tollgate.redis.lrange(partition.queue("rita"), 0, -1), []);
    assert.equal(await tollgate.redis.zscore(partition.dueUsers, "rita"), null);
  });

  test("PurgeQueue cancels every queued task, empties the queue and takes the user off the due schedule; again: 0", async () => {
    const admin = as(ADMIN_KEY);
    const [running, queued] = await fill(admin, "pam", 4);
    const partition = keys.forUser("pam");
    assert.notEqual(await tollgate.redis.zscore(partition.dueUsers, "pam"), null);
    assert.equal((await admin.purgeQueue({ userId: "pam" })).cancelled, 4);
    assert.deepEqual(await tollgate.redis.lrange(partition.queue("pam"), 0, -1), []);
    assert.equal(await tollgate.redis.zscore(partition.dueUsers, "pam"), null);
    assert.equal(await tollgate.redis.hget(partition.heads, "pam"), null);
    for (const taskId of queued) assert.equal((await admin.getTask({ taskId })).task?.state, TaskState.CANCELLED);
    assert.equal((await admin.getTask({ taskId: running })).task?.state, TaskState.RUNNING, "running tasks run on");
    assert.equal((await admin.purgeQueue({ userId: "pam" })).cancelled, 0);
    assert.equal((await admin.purgeQueue({ userId: "nobody" })).cancelled, 0);
  });

  test("a user's key cancels and purges only its own user's tasks (PERMISSION_DENIED, as GetTask); an admin's any", async () => {
    const [, queued] = await fill(as(ADMIN_KEY), "bob", 2);
    const alice = as(ALICE_KEY);
    const cancel = await expectCode(alice.cancelTask({ taskId: queued[0]! }), Code.PermissionDenied);
    assert.match(cancel.rawMessage, /may cancel only its own user's tasks/);
    await expectCode(alice.getTask({ taskId: queued[0]! }), Code.PermissionDenied);
    const purge = await expectCode(alice.purgeQueue({ userId: "bob" }), Code.PermissionDenied);
    assert.match(purge.rawMessage, /acts for user "alice" only; it may not purge user "bob"'s queue/);
    assert.equal((await as(BOB_KEY).getTask({ taskId: queued[0]! })).task?.state, TaskState.QUEUED, "nothing changed");
    assert.equal((await as(BOB_KEY).cancelTask({ taskId: queued[0]! })).task?.state, TaskState.CANCELLED);
    assert.equal((await as(ADMIN_KEY).purgeQueue({ userId: "bob" })).cancelled, 1);
    await expectCode(as(ADMIN_KEY).purgeQueue({ userId: "" }), Code.InvalidArgument);
    await expectCode(as(ADMIN_KEY).purgeQueue({ userId: "a\u0007b" }), Code.InvalidArgument);
  });
});

describe("CancelTask, 1/1s: cancelling the head", () => {
  let tollgate: TestServer;
  before(async () => {
    tollgate = await startTestServer(ctx.redis.url, { TOLLGATE_RATE_LIMITS: "1/1s" });
  });
  after(async () => {
    await tollgate?.close();
  });

  test("the next task becomes the head and starts when the window allows", async () => {
    const client = createTollgateClient({ baseUrl: tollgate.address });
    const first = await client.submit({ userId: "hank" });
    assert.equal(first.disposition, Disposition.STARTED);
    const head = await client.submit({ userId: "hank" });
    const next = await client.submit({ userId: "hank" });
    assert.equal(head.queuePosition, 1);
    const partition = keys.forUser("hank");
    assert.equal((await client.cancelTask({ taskId: head.taskId })).task?.state, TaskState.CANCELLED);
    // The drainer may already be starting it; if not, it is the head now.
    const nowHead = await tollgate.redis.hget(partition.heads, "hank");
    assert.ok(nowHead === next.taskId || nowHead === null, `heads names ${nowHead}`);
    await pollUntil(
      "the next task to succeed",
      async () => (await client.getTask({ taskId: next.taskId })).task?.state === TaskState.SUCCEEDED,
      { timeoutMs: 15_000 },
    );
    assert.equal((await client.getTask({ taskId: head.taskId })).task?.state, TaskState.CANCELLED, "never ran");
    assert.equal(await tollgate.redis.zscore(partition.dueUsers, "hank"), null);
  });
});
