// PauseQueue and ResumeQueue: while a user's queue is paused nothing of the
// user starts (not at Submit, not from the queue, not a retry coming due),
// Submit still queues (REJECT is refused, without a time to retry), and
// WatchQueue says paused; resumed, the queue drains at the policy's pace, no
// more starts in a window than its limit. Idempotent both ways; who may pause
// whose queue.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, type Client } from "@connectrpc/connect";
import { createTollgateClient } from "../../src/client/client.js";
import { expectCode, pollUntil } from "../support/expect.js";
import { usePrivateRedis } from "../support/fixture.js";
import { ADMIN_KEY, ALICE_KEY, writeKeyFile } from "../support/api-keys.js";
import { firstSnapshot } from "../support/watch.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { keys } from "../support/store.js";
import { Disposition, OverLimit, type TaskService, TaskState } from "../../gen/ts/tollgate/v1/task_service_pb.js";

const FIXTURE_HANDLERS = fileURLToPath(new URL("../fixtures/handlers.ts", import.meta.url));
/** 2 starts per 1 s window. */
const LIMIT = 2;
const WINDOW_MS = 1_000;
/** Redis' clock stamps started_at and times the windows; ms of rounding between the two. */
const TOLERANCE_MS = 50;
/** Backoff before the second attempt: the retry comes due within [300, 600] ms (full jitter). */
const RETRY_BACKOFF_MS = 600;

const ctx = usePrivateRedis("pause");

describe(`PauseQueue and ResumeQueue, ${LIMIT}/${WINDOW_MS / 1000}s`, () => {
  let tollgate: TestServer;
  const as = (key: string): Client<typeof TaskService> =>
    createTollgateClient({ baseUrl: tollgate.address, apiKey: key });

  async function states(client: Client<typeof TaskService>, taskIds: readonly string[]) {
    return Promise.all(taskIds.map(async (taskId) => (await client.getTask({ taskId })).task!));
  }

  before(async () => {
    await writeKeyFile(ctx.dir);
    tollgate = await startTestServer(ctx.redis.url, {
      TOLLGATE_AUTH_KEYS: join(ctx.dir, "keys"),
      TOLLGATE_RATE_LIMITS: `${LIMIT}/1s`,
      TOLLGATE_HANDLER: FIXTURE_HANDLERS,
      TOLLGATE_MAX_ATTEMPTS: "3",
      TOLLGATE_RETRY_BACKOFF_MS: String(RETRY_BACKOFF_MS),
    });
  });
  after(async () => {
    await tollgate?.close();
  });

  test("paused with 5 queued: nothing starts, Submit queues, REJECT is refused; resumed, they start at the policy's pace", async () => {
    const alice = as(ALICE_KEY);
    const submitted: string[] = [];
    for (let i = 0; i < LIMIT + 5; i++) submitted.push((await alice.submit({ userId: "alice" })).taskId);
    const paused = await alice.pauseQueue({ userId: "alice" });
    assert.deepEqual([paused.paused, paused.queued], [true, 5n]);
    const queued = submitted.slice(LIMIT);

    const watched = await pollUntil("WatchQueue to say paused", async () => {
      const snapshot = await firstSnapshot(alice, "alice");
      return snapshot.paused ? snapshot : undefined;
    });
    assert.equal(watched.queued, 5n);
    assert.equal(watched.nextStart, undefined, "no next start while paused");
    assert.equal(watched.estimatedDrain, undefined);

    const later = await alice.submit({ userId: "alice" });
    assert.equal(later.disposition, Disposition.QUEUED, "Submit still accepts and queues");
    queued.push(later.taskId);
    const refused = await expectCode(
      alice.submit({ userId: "alice", overLimit: OverLimit.REJECT }),
      Code.ResourceExhausted,
      "REJECT while paused",
    );
    assert.match(refused.rawMessage, /paused/);
    assert.equal(refused.metadata.get("retry-after-ms"), null, "no time to retry: nobody knows when it resumes");

    // Well past the window the first starts opened: still nothing of the queue started.
    await sleep(1_500);
    for (const task of await states(alice, queued)) assert.equal(task.state, TaskState.QUEUED, task.taskId);
    assert.equal((await firstSnapshot(alice, "alice")).queued, 6n);

    const resumedAt = Date.now();
    const resumed = await alice.resumeQueue({ userId: "alice" });
    assert.deepEqual([resumed.paused, resumed.queued], [false, 6n]);
    assert.equal((await firstSnapshot(alice, "alice")).paused, false);

    const done = await pollUntil("the 6 queued tasks to run", async () => {
      const tasks = await states(alice, queued);
      return tasks.every((task) => task.state === TaskState.SUCCEEDED) ? tasks : undefined;
    });
    const starts = done.map((task) => timestampMs(task.startedAt!)).sort((a, b) => a - b);
    // The windows of the first starts closed while paused: the resumed queue
    // opens a window at once (within 3 s: room for a loaded machine; a queue
    // left paused would not start at all), then one per window, never more
    // than LIMIT in one.
    assert.ok(starts[0]! - resumedAt < 3_000, `the first start ${starts[0]! - resumedAt} ms after resume`);
    for (let i = 0; i + LIMIT < starts.length; i += LIMIT) {
      const gap = starts[i + LIMIT]! - starts[i]!;
      assert.ok(gap >= WINDOW_MS - TOLERANCE_MS, `starts ${i} and ${i + LIMIT} only ${gap} ms apart: a burst`);
    }
  });

  test("an empty queue paused, then Submit: queued, not started, not due; resumed, it starts", async () => {
    const admin = as(ADMIN_KEY);
    const paused = await admin.pauseQueue({ userId: "bob" });
    assert.deepEqual([paused.paused, paused.queued], [true, 0n]);
    const task = await admin.submit({ userId: "bob" });
    assert.equal(task.disposition, Disposition.QUEUED, "nothing ahead and the windows empty, yet queued");
    await sleep(300);
    assert.equal((await admin.getTask({ taskId: task.taskId })).task?.state, TaskState.QUEUED);
    assert.equal(await tollgate.redis.zscore(keys.forUser("bob").dueUsers, "bob"), null, "bob is not due");
    assert.equal((await admin.resumeQueue({ userId: "bob" })).queued, 1n);
    await pollUntil("bob's task to run", async () => {
      const answer = (await admin.getTask({ taskId: task.taskId })).task;
      return answer?.state === TaskState.SUCCEEDED;
    });
  });

  test("a task failing while paused does not retry until resumed", async () => {
    const admin = as(ADMIN_KEY);
    // flaky fails its first two attempts at once.
    const task = await admin.submit({ userId: "dave", kind: "flaky" });
    assert.equal(task.disposition, Disposition.STARTED);
    await admin.pauseQueue({ userId: "dave" });
    await pollUntil("the first attempt to fail", async () => {
      const answer = (await admin.getTask({ taskId: task.taskId })).task;
      return answer?.lastError !== "" && answer?.attempts === 1;
    });
    // Past the latest the retry comes due, and the drainer's claim at that moment.
    await sleep(RETRY_BACKOFF_MS + 400);
    const waiting = (await admin.getTask({ taskId: task.taskId })).task!;
    assert.equal(waiting.attempts, 1, "no second attempt while paused");
    assert.ok(waiting.state === TaskState.QUEUED || waiting.state === TaskState.FAILED, `state ${waiting.state}`);
    assert.equal((await firstSnapshot(admin, "dave")).queued, 1n);

    await admin.resumeQueue({ userId: "dave" });
    await pollUntil("the retries to run once resumed", async () => {
      const answer = (await admin.getTask({ taskId: task.taskId })).task;
      return answer !== undefined && answer.attempts >= 2;
    });
  });

  test("idempotent both ways; a user's key pauses only its own queue, a malformed user_id is refused", async () => {
    const admin = as(ADMIN_KEY);
    const alice = as(ALICE_KEY);
    for (let i = 0; i < 2; i++) assert.equal((await alice.pauseQueue({ userId: "alice" })).paused, true);
    for (let i = 0; i < 2; i++) assert.equal((await alice.resumeQueue({ userId: "alice" })).paused, false);
    for (let i = 0; i < 2; i++) assert.equal((await admin.resumeQueue({ userId: "erin" })).paused, false);
    await expectCode(alice.pauseQueue({ userId: "erin" }), Code.PermissionDenied, "alice pausing erin");
    await expectCode(alice.resumeQueue({ userId: "erin" }), Code.PermissionDenied, "alice resuming erin");
    await expectCode(admin.pauseQueue({ userId: "" }), Code.InvalidArgument, "no user_id");
    await expectCode(admin.resumeQueue({ userId: "a\u0001b" }), Code.InvalidArgument, "a control character");
    assert.equal(await tollgate.redis.sismember(keys.forUser("erin").paused, "erin"), 0);
    assert.equal((await admin.pauseQueue({ userId: "erin" })).paused, true);
    assert.equal(await tollgate.redis.sismember(keys.forUser("erin").paused, "erin"), 1, "stored in Redis");
  });
});
