// ListTasks: one user's queued (in queue order, with positions), running and
// dead-lettered tasks, a page at a time, with page tokens that stay right
// while the queue changes between pages; who may list whose tasks; and the
// refusals of a malformed request.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Code, type Client } from "@connectrpc/connect";
import { createTollgateClient } from "../../src/client/client.js";
import { expectCode, pollUntil } from "../support/expect.js";
import { usePrivateRedis } from "../support/fixture.js";
import { ADMIN_KEY, ALICE_KEY, BOB_KEY, writeKeyFile } from "../support/api-keys.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { keys } from "../support/store.js";
import {
  Disposition,
  ListState,
  type TaskService,
  TaskState,
  type ListTasksResponse,
} from "../../gen/ts/tollgate/v1/task_service_pb.js";

const FIXTURE_HANDLERS = fileURLToPath(new URL("../fixtures/handlers.ts", import.meta.url));

const ctx = usePrivateRedis("list-tasks");

describe("ListTasks", () => {
  let tollgate: TestServer;
  const as = (key: string): Client<typeof TaskService> =>
    createTollgateClient({ baseUrl: tollgate.address, apiKey: key });
  const ids = (page: ListTasksResponse): string[] => page.tasks.map((task) => task.taskId);
  const positions = (page: ListTasksResponse): number[] => page.tasks.map((task) => task.queuePosition);

  // One user's 5 tasks under 1/1h: the first starts (and runs for a minute),
  // 4 queue. Returns the running task's id and the queued ones', in order.
  async function fill(client: Client<typeof TaskService>, userId: string): Promise<[string, string[]]> {
    const first = await client.submit({ userId, kind: "slow", payload: new TextEncoder().encode("60000") });
    assert.equal(first.disposition, Disposition.STARTED);
    const queued: string[] = [];
    for (let i = 0; i < 4; i++) {
      const answer = await client.submit({ userId });
      assert.equal(answer.disposition, Disposition.QUEUED);
      assert.equal(answer.queuePosition, i + 1);
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
      TOLLGATE_MAX_ATTEMPTS: "1",
    });
  });
  after(async () => {
    await tollgate?.close();
  });

  test("queued tasks in queue order with positions, over pages; a task submitted between pages is listed once", async () => {
    const alice = as(ALICE_KEY);
    const [running, queued] = await fill(alice, "alice");

    const first = await alice.listTasks({ userId: "alice", state: ListState.QUEUED, pageSize: 2 });
    assert.deepEqual(ids(first), queued.slice(0, 2));
    assert.deepEqual(positions(first), [1, 2]);
    assert.ok(first.tasks.every((task) => task.state === TaskState.QUEUED && task.userId === "alice"));
    assert.ok(first.tasks[0]!.submittedAt, "submitted_at is set");
    assert.notEqual(first.nextPageToken, "");

    const late = await alice.submit({});
    assert.equal(late.queuePosition, 5);

    const second = await alice.listTasks({ state: ListState.QUEUED, pageSize: 2, pageToken: first.nextPageToken });
    assert.deepEqual(ids(second), queued.slice(2, 4));
    assert.deepEqual(positions(second), [3, 4]);
    assert.notEqual(second.nextPageToken, "");

    const third = await alice.listTasks({
      userId: "alice",
      state: ListState.QUEUED,
      pageSize: 2,
      pageToken: second.nextPageToken,
    });
    assert.deepEqual(ids(third), [late.taskId]);
    assert.deepEqual(positions(third), [5]);
    assert.equal(third.nextPageToken, "", "the last page has no token");

    // The default page size takes them all; the running one is not queued.
    const all = await alice.listTasks({ userId: "alice", state: ListState.QUEUED });
    assert.deepEqual(ids(all), [...queued, late.taskId]);
    assert.ok(!ids(all).includes(running));
    // A page size over the maximum is taken as the maximum, not refused.
    assert.equal(
      (await alice.listTasks({ userId: "alice", state: ListState.QUEUED, pageSize: 100_000 })).tasks.length,
      5,
    );

    const runningPage = await alice.listTasks({ userId: "alice", state: ListState.RUNNING });
    assert.deepEqual(ids(runningPage), [running]);
    assert.equal(runningPage.tasks[0]!.state, TaskState.RUNNING);
    assert.equal(runningPage.tasks[0]!.queuePosition, 0);
    assert.equal(runningPage.tasks[0]!.attempts, 1);
    assert.ok(runningPage.tasks[0]!.startedAt);
    assert.equal(runningPage.nextPageToken, "");

    assert.deepEqual(ids(await alice.listTasks({ userId: "alice", state: ListState.DEAD })), []);
  });

  test("when the page's last task left the queue (and with it all before it), the next page starts at the head", async () => {
    const admin = as(ADMIN_KEY);
    const [, queued] = await fill(admin, "frank");
    const first = await admin.listTasks({ userId: "frank", state: ListState.QUEUED, pageSize: 2 });
    assert.deepEqual(ids(first), queued.slice(0, 2));
    // The two at the head leave, as claims take them (the policy holds the
    // real ones back for an hour).
    const queue = keys.forUser("frank").queue("frank");
    assert.deepEqual(await tollgate.redis.lpop(queue, 2), queued.slice(0, 2));

    const second = await admin.listTasks({
      userId: "frank",
      state: ListState.QUEUED,
      pageSize: 2,
      pageToken: first.nextPageToken,
    });
    assert.deepEqual(ids(second), queued.slice(2, 4), "none skipped, none repeated");
    assert.deepEqual(positions(second), [1, 2], "positions as the queue is now");
    assert.equal(second.nextPageToken, "");
  });

  test("dead-lettered tasks, newest first, with their last error", async () => {
    const admin = as(ADMIN_KEY);
    const dead = await admin.submit({ userId: "dan", kind: "broken" });
    assert.equal(dead.disposition, Disposition.STARTED);
    const page = await pollUntil(
      "the task to be dead-lettered",
      async () => {
        const listed = await admin.listTasks({ userId: "dan", state: ListState.DEAD });
        return listed.tasks.length > 0 ? listed : undefined;
      },
      { timeoutMs: 10_000 },
    );
    assert.deepEqual(ids(page), [dead.taskId]);
    const task = page.tasks[0]!;
    assert.equal(task.state, TaskState.DEAD);
    assert.equal(task.lastError, "broken handler");
    assert.equal(task.queuePosition, 0);
    assert.ok(task.finishedAt);
    assert.deepEqual(ids(await admin.listTasks({ userId: "dan", state: ListState.QUEUED })), []);
    assert.deepEqual(ids(await admin.listTasks({ userId: "dan", state: ListState.RUNNING })), []);
  });

  test("a user's key lists only its own user's tasks; an admin's any user's", async () => {
    const error = await expectCode(
      as(BOB_KEY).listTasks({ userId: "alice", state: ListState.QUEUED }),
      Code.PermissionDenied,
    );
    assert.match(error.rawMessage, /acts for user "bob" only; it may not list user "alice"'s tasks/);
    assert.equal((await as(BOB_KEY).listTasks({ state: ListState.QUEUED })).tasks.length, 0);
    assert.ok((await as(ADMIN_KEY).listTasks({ userId: "alice", state: ListState.QUEUED })).tasks.length > 0);
  });

  test("INVALID_ARGUMENT: no state, a malformed user id, a garbage token, a token of another listing", async () => {
    const admin = as(ADMIN_KEY);
    const noState = await expectCode(admin.listTasks({ userId: "alice" }), Code.InvalidArgument);
    assert.match(noState.rawMessage, /^state: is required/);
    const noUser = await expectCode(admin.listTasks({ state: ListState.QUEUED }), Code.InvalidArgument);
    assert.match(noUser.rawMessage, /^user_id: is required/);
    await expectCode(admin.listTasks({ userId: "a\u0007b", state: ListState.QUEUED }), Code.InvalidArgument);
    for (const pageToken of [
      "garbage!",
      "Z2FyYmFnZQ",
      Buffer.from('{"v":1,"u":"alice","s":"queued","a":"x"}').toString("base64url"),
    ]) {
      const garbage = await expectCode(
        admin.listTasks({ userId: "alice", state: ListState.QUEUED, pageToken }),
        Code.InvalidArgument,
        pageToken,
      );
      assert.match(garbage.rawMessage, /^page_token: is not a page token/);
    }
    const { nextPageToken } = await admin.listTasks({ userId: "alice", state: ListState.QUEUED, pageSize: 1 });
    assert.notEqual(nextPageToken, "");
    for (const other of [
      { userId: "bob", state: ListState.QUEUED },
      { userId: "alice", state: ListState.DEAD },
    ]) {
      const error = await expectCode(admin.listTasks({ ...other, pageToken: nextPageToken }), Code.InvalidArgument);
      assert.match(error.rawMessage, /^page_token: does not belong to this listing/);
    }
  });
});
