// RequeueDeadLetters and PurgeDeadLetters: dead letters back at the tail of
// their queue with fresh attempts, starting no faster than the policy allows
// (the starts replayed against the windows), or deleted with their records;
// ids not on the list reported, not refused; who may act on whose dead
// letters; and the refusals of a malformed request.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Code, type Client } from "@connectrpc/connect";
import { createTollgateClient } from "../../src/client/client.js";
import { parseRatePolicy } from "../../src/core/rate-policy.js";
import { expectCode, pollUntil } from "../support/expect.js";
import { usePrivateRedis } from "../support/fixture.js";
import { ADMIN_KEY, ALICE_KEY, BOB_KEY, writeKeyFile } from "../support/api-keys.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { keys } from "../support/store.js";
import { checkStarts, readFixtureLog } from "../support/task-log.js";
import { Disposition, ListState, type TaskService, TaskState } from "../../gen/ts/tollgate/v1/task_service_pb.js";

const FIXTURE_HANDLERS = fileURLToPath(new URL("../fixtures/handlers.ts", import.meta.url));
const POLICY = "3/2s";

const ctx = usePrivateRedis("dead-letters");

describe("RequeueDeadLetters and PurgeDeadLetters", () => {
  let tollgate: TestServer;
  let log: string;
  const as = (key: string): Client<typeof TaskService> =>
    createTollgateClient({ baseUrl: tollgate.address, apiKey: key });
  const deadIds = async (client: Client<typeof TaskService>, userId: string): Promise<string[]> =>
    (await client.listTasks({ userId, state: ListState.DEAD })).tasks.map((task) => task.taskId);
  /** Waits until the user's dead-letter list holds exactly `ids` (in any order). */
  const untilDead = (client: Client<typeof TaskService>, userId: string, ids: readonly string[]) =>
    pollUntil(
      `${ids.length} dead letters of ${userId}`,
      async () => {
        const dead = await deadIds(client, userId);
        return dead.length === ids.length && ids.every((id) => dead.includes(id)) ? dead : undefined;
      },
      { timeoutMs: 15_000 },
    );
  /** An id of the user's partition that no task has. */
  const unknownId = (userId: string) => `${keys.forUser(userId).partition}.${"A".repeat(22)}`;

  before(async () => {
    log = join(ctx.dir, "starts.log");
    process.env.TOLLGATE_FIXTURE_LOG = log;
    await writeKeyFile(ctx.dir);
    tollgate = await startTestServer(ctx.redis.url, {
      TOLLGATE_AUTH_KEYS: join(ctx.dir, "keys"),
      TOLLGATE_RATE_LIMITS: POLICY,
      TOLLGATE_HANDLER: FIXTURE_HANDLERS,
      TOLLGATE_MAX_ATTEMPTS: "1",
    });
  });
  after(async () => {
    await tollgate?.close();
    delete process.env.TOLLGATE_FIXTURE_LOG;
  });

  test("requeued by id: at the tail with fresh attempts, it runs (and dies) again; requeue all; the starts keep the policy", async () => {
    const alice = as(ALICE_KEY);
    const readyAt = Date.now();
    const submitted: string[] = [];
    for (let i = 0; i < 3; i++) {
      const answer = await alice.submit({ userId: "alice", kind: "broken" });
      assert.equal(answer.disposition, Disposition.STARTED);
      submitted.push(answer.taskId);
    }
    await untilDead(alice, "alice", submitted);
    // The window is full now (3 of 3): a task submitted now waits in the queue.
    const waiting = await alice.submit({ userId: "alice" });
    assert.equal(waiting.disposition, Disposition.QUEUED);
    const [first, second, third] = submitted as [string, string, string];

    const requeued = await alice.requeueDeadLetters({ userId: "alice", taskIds: [second] });
    assert.equal(requeued.requeued, 1);
    assert.deepEqual(requeued.notFound, []);
    const queued = await alice.listTasks({ userId: "alice", state: ListState.QUEUED });
    assert.deepEqual(
      queued.tasks.map((task) => [task.taskId, task.queuePosition]),
      [
        [waiting.taskId, 1],
        [second, 2],
      ],
      "at the tail of the queue",
    );
    assert.deepEqual((await deadIds(alice, "alice")).sort(), [first, third].sort());
    const { task } = await alice.getTask({ taskId: second });
    assert.equal(task?.state, TaskState.QUEUED);
    assert.equal(task?.attempts, 0);
    assert.equal(task?.attemptsLeft, 1);
    assert.equal(task?.lastError, "");
    assert.equal(task?.finishedAt, undefined);
    assert.equal(task?.startedAt, undefined);
    assert.equal(task?.kind, "broken");
    // The record no longer expires with the dead-letter retention.
    assert.equal(await tollgate.redis.ttl(keys.forUser("alice").task(second)), -1);

    // When the window opens it runs again, and the broken handler kills it again.
    await untilDead(alice, "alice", submitted);
    const again = (await alice.getTask({ taskId: second })).task;
    assert.equal(again?.state, TaskState.DEAD);
    assert.equal(again?.attempts, 1);
    assert.equal(again?.lastError, "broken handler");

    // Every one of them (one may start and die again at once: the window has room for one); again they die.
    const all = await alice.requeueDeadLetters({ userId: "alice" });
    assert.equal(all.requeued, 3);
    assert.deepEqual(all.notFound, []);
    await untilDead(alice, "alice", submitted);

    const starts = (await readFixtureLog(log)).filter((start) => start.userId === "alice");
    // 3 first runs, the queued task, the one requeued alone, then all 3 again.
    assert.equal(starts.length, 8, JSON.stringify(starts));
    assert.equal(starts.filter((start) => start.taskId === second).length, 3);
    assert.ok(
      starts.every((start) => start.attempt === 1),
      "every run was a first attempt",
    );
    const check = checkStarts(
      parseRatePolicy(POLICY),
      starts.map((start) => start.at),
      readyAt,
    );
    assert.equal(check.violations, 0, `lateness ${JSON.stringify(check.lateness)}`);
    // And not held back: 8 starts of 3 per 2 s fit in 3 windows, the last
    // opening 4 s after the first (the bound leaves room for a loaded machine).
    const times = starts.map((start) => start.at);
    assert.ok(Math.max(...times) - Math.min(...times) < 15_000, `starts ${JSON.stringify(times)}`);
    const counts = await tollgate.store.snapshot("alice");
    assert.deepEqual([counts.queued, counts.running], [0, 0], "nothing left queued or running");
    assert.equal(counts.dead, 7, "each dead-lettering counted (a lifetime count)");
    assert.equal((await tollgate.store.snapshotAll()).queued, 0, "the partition's queued count is back to 0");
  });

  test("purge: by id (unknown ids not found), then all; the records are gone; idempotent", async () => {
    const admin = as(ADMIN_KEY);
    const submitted: string[] = [];
    for (let i = 0; i < 3; i++) submitted.push((await admin.submit({ userId: "pat", kind: "broken" })).taskId);
    await untilDead(admin, "pat", submitted);
    const [first, second, third] = submitted as [string, string, string];
    const unknown = unknownId("pat");
    const otherPartition = `${(keys.forUser("pat").partition + 1) % keys.partitions}.${"B".repeat(22)}`;

    const byId = await admin.purgeDeadLetters({ userId: "pat", taskIds: [first, unknown, otherPartition, first] });
    assert.equal(byId.purged, 1);
    assert.deepEqual(byId.notFound, [unknown, otherPartition]);
    await expectCode(admin.getTask({ taskId: first }), Code.NotFound);
    assert.deepEqual((await deadIds(admin, "pat")).sort(), [second, third].sort());

    const all = await admin.purgeDeadLetters({ userId: "pat" });
    assert.deepEqual([all.purged, all.notFound], [2, []]);
    assert.deepEqual(await deadIds(admin, "pat"), []);
    for (const taskId of submitted) await expectCode(admin.getTask({ taskId }), Code.NotFound, taskId);
    assert.equal(await tollgate.redis.exists(keys.forUser("pat").deadLetters("pat")), 0);

    const again = await admin.purgeDeadLetters({ userId: "pat", taskIds: [first] });
    assert.deepEqual([again.purged, again.notFound], [0, [first]]);
    const requeue = await admin.requeueDeadLetters({ userId: "pat", taskIds: [second] });
    assert.deepEqual([requeue.requeued, requeue.notFound], [0, [second]]);
    const none = await admin.requeueDeadLetters({ userId: "pat" });
    assert.deepEqual([none.requeued, none.notFound], [0, []]);
  });

  test("a user's key acts on its own user's dead letters only; an admin's on any user's", async () => {
    const bob = as(BOB_KEY);
    const requeue = await expectCode(bob.requeueDeadLetters({ userId: "alice" }), Code.PermissionDenied);
    assert.match(requeue.rawMessage, /acts for user "bob" only; it may not requeue user "alice"'s dead letters/);
    const purge = await expectCode(
      bob.purgeDeadLetters({ userId: "alice", taskIds: [unknownId("alice")] }),
      Code.PermissionDenied,
    );
    assert.match(purge.rawMessage, /it may not purge user "alice"'s dead letters/);
    // Its own user's: user_id empty names it.
    assert.deepEqual((await bob.purgeDeadLetters({ taskIds: [unknownId("bob")] })).notFound, [unknownId("bob")]);
    assert.equal((await as(ADMIN_KEY).requeueDeadLetters({ userId: "bob" })).requeued, 0);
  });

  test("INVALID_ARGUMENT: no user, a malformed user id, a task id that is not one, too many ids", async () => {
    const admin = as(ADMIN_KEY);
    const noUser = await expectCode(admin.requeueDeadLetters({}), Code.InvalidArgument);
    assert.match(noUser.rawMessage, /^user_id: is required/);
    await expectCode(admin.purgeDeadLetters({ userId: "a\u0007b" }), Code.InvalidArgument);
    const badId = await expectCode(
      admin.purgeDeadLetters({ userId: "alice", taskIds: [unknownId("alice"), "nope"] }),
      Code.InvalidArgument,
    );
    assert.match(badId.rawMessage, /^task_ids\[1\]: is not a Tollgate task id/);
    const tooMany = await expectCode(
      admin.requeueDeadLetters({ userId: "alice", taskIds: Array.from({ length: 1001 }, () => unknownId("alice")) }),
      Code.InvalidArgument,
    );
    assert.match(tooMany.rawMessage, /^task_ids: names 1001 tasks; the limit is 1000/);
  });
});
