// Delayed tasks (Submit's not_before) and start deadlines (start_by), against
// a private Redis and a server: a delayed task starts no earlier than its
// moment and then as the windows allow; delayed tasks never exceed a window;
// a task not started by its start_by ends EXPIRED and never runs, and the
// next takes its place; bad times are INVALID_ARGUMENT; a delayed task can be
// cancelled.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, type Client } from "@connectrpc/connect";
import { createTollgateClient } from "../../src/client/client.js";
import { expectCode, pollUntil } from "../support/expect.js";
import { usePrivateRedis } from "../support/fixture.js";
import { ALICE_KEY, writeKeyFile } from "../support/api-keys.js";
import { firstSnapshot } from "../support/watch.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { Disposition, type TaskService, TaskState } from "../../gen/ts/tollgate/v1/task_service_pb.js";

const FIXTURE_HANDLERS = fileURLToPath(new URL("../fixtures/handlers.ts", import.meta.url));
/** 1 start per 1 s window. */
const WINDOW_MS = 1_000;
/** A delayed task's moment, ms after Submit. */
const DELAY_MS = 1_500;
/** How late a start may be on a loaded 2-core CI (the precise figure belongs in a bench). */
const LATE_MS = 1_500;
/** Redis' clock stamps started_at and times the windows; ms of rounding between the two. */
const TOLERANCE_MS = 50;

const ctx = usePrivateRedis("delayed");

describe("delayed tasks and start deadlines, 1/1s", () => {
  let tollgate: TestServer;
  let alice: Client<typeof TaskService>;
  let log = "";

  /** Task ids whose handler started, from the fixture's log. */
  async function ran(): Promise<Set<string>> {
    const text = await readFile(log, "utf8").catch(() => "");
    return new Set(text.split("\n").flatMap((line) => (line ? [line.split(" ")[1]!] : [])));
  }

  before(async () => {
    log = join(ctx.dir, "attempts.log");
    // The handlers run in this process: they read the log's name here.
    process.env.TOLLGATE_FIXTURE_LOG = log;
    await writeKeyFile(ctx.dir);
    tollgate = await startTestServer(ctx.redis.url, {
      TOLLGATE_AUTH_KEYS: join(ctx.dir, "keys"),
      TOLLGATE_RATE_LIMITS: "1/1s",
      TOLLGATE_HANDLER: FIXTURE_HANDLERS,
    });
    alice = createTollgateClient({ baseUrl: tollgate.address, apiKey: ALICE_KEY });
  });
  after(async () => {
    await tollgate?.close();
    delete process.env.TOLLGATE_FIXTURE_LOG;
  });

  test("a task delayed 1.5 s is queued, has not started at 1 s, starts within [1.5 s, 1.5 s + slack]", async () => {
    const submittedAt = Date.now();
    const notBefore = submittedAt + DELAY_MS;
    const answer = await alice.submit({ userId: "alice", notBefore: timestampFromMs(notBefore) });
    assert.equal(answer.disposition, Disposition.QUEUED);
    assert.ok(timestampMs(answer.estimatedStart!) >= notBefore, "the estimate is never before not_before");
    assert.equal((await firstSnapshot(alice, "alice")).queued, 1n, "a delayed task counts as queued");

    await sleep(Math.max(0, submittedAt + 1_000 - Date.now()));
    const early = (await alice.getTask({ taskId: answer.taskId })).task!;
    assert.equal(early.state, TaskState.QUEUED, "not started 1 s in");
    assert.equal(early.startedAt, undefined);
    assert.equal(timestampMs(early.notBefore!), notBefore, "GetTask shows not_before");

    const done = await pollUntil("the delayed task to run", async () => {
      const task = (await alice.getTask({ taskId: answer.taskId })).task!;
      return task.state === TaskState.SUCCEEDED ? task : undefined;
    });
    const startedAt = timestampMs(done.startedAt!);
    assert.ok(startedAt >= notBefore - TOLERANCE_MS, `started ${notBefore - startedAt} ms before not_before`);
    assert.ok(startedAt <= notBefore + LATE_MS, `started ${startedAt - notBefore} ms after not_before`);
  });

  test("three tasks delayed to one moment start one window apart", async () => {
    await sleep(WINDOW_MS); // the last test's window closes
    const notBefore = Date.now() + 500;
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push((await alice.submit({ userId: "alice", notBefore: timestampFromMs(notBefore) })).taskId);
    }
    const done = await pollUntil("the three delayed tasks to run", async () => {
      const tasks = await Promise.all(ids.map(async (taskId) => (await alice.getTask({ taskId })).task!));
      return tasks.every((task) => task.state === TaskState.SUCCEEDED) ? tasks : undefined;
    });
    const starts = done.map((task) => timestampMs(task.startedAt!));
    // FIFO among tasks delayed to one moment is not promised (the delayed set orders ties by id).
    starts.sort((a, b) => a - b);
    assert.ok(starts[0]! >= notBefore - TOLERANCE_MS, "none before not_before");
    for (let i = 1; i < starts.length; i++) {
      assert.ok(starts[i]! - starts[i - 1]! >= WINDOW_MS - TOLERANCE_MS, `starts ${starts.join(", ")}`);
    }
  });

  test("a task not started by its start_by ends EXPIRED, never runs, and the next one runs", async () => {
    await sleep(WINDOW_MS);
    const a = await alice.submit({ userId: "alice" });
    assert.equal(a.disposition, Disposition.STARTED);
    const startBy = Date.now() + 500;
    const b = await alice.submit({ userId: "alice", startBy: timestampFromMs(startBy) });
    assert.equal(b.disposition, Disposition.QUEUED, "the window is full: B waits for it, past its start_by");
    const c = await alice.submit({ userId: "alice" });

    const doneC = await pollUntil("C to run", async () => {
      const task = (await alice.getTask({ taskId: c.taskId })).task!;
      return task.state === TaskState.SUCCEEDED ? task : undefined;
    });
    const expired = (await alice.getTask({ taskId: b.taskId })).task!;
    assert.equal(expired.state, TaskState.EXPIRED);
    assert.equal(expired.startedAt, undefined);
    assert.equal(expired.attempts, 0);
    assert.equal(timestampMs(expired.startBy!), startBy, "GetTask shows start_by");
    assert.equal(expired.attemptsLeft, 0);
    assert.ok(expired.finishedAt, "finished_at is set");
    assert.ok(
      timestampMs(expired.finishedAt) >= startBy,
      `finished_at ${timestampMs(expired.finishedAt)} start_by ${startBy}`,
    );
    assert.ok(!(await ran()).has(b.taskId), "B's handler never ran");
    assert.ok((await ran()).has(c.taskId));
    // C took B's place: it started with the window B would have used.
    const aStarted = timestampMs((await alice.getTask({ taskId: a.taskId })).task!.startedAt!);
    // Had B kept its place, C's window would open two windows after A's.
    assert.ok(timestampMs(doneC.startedAt!) - aStarted < 2 * WINDOW_MS - TOLERANCE_MS, "C started in the next window");
    await expectCode(alice.cancelTask({ taskId: b.taskId }), Code.FailedPrecondition, "cancel of an expired task");
  });

  test("a delayed task whose start_by passes before its moment ends EXPIRED when it comes due", async () => {
    await sleep(WINDOW_MS);
    // Both in the near future: start_by just after not_before; the window
    // is full at not_before (A), so the task cannot start by then.
    const a = await alice.submit({ userId: "alice" });
    assert.equal(a.disposition, Disposition.STARTED);
    const notBefore = Date.now() + 300;
    const b = await alice.submit({
      userId: "alice",
      notBefore: timestampFromMs(notBefore),
      startBy: timestampFromMs(notBefore + 100),
    });
    const task = await pollUntil("B to expire", async () => {
      const record = (await alice.getTask({ taskId: b.taskId })).task!;
      return record.state === TaskState.EXPIRED ? record : undefined;
    });
    assert.equal(task.startedAt, undefined);
    assert.ok(!(await ran()).has(b.taskId));
  });

  test("INVALID_ARGUMENT: not_before too far ahead, start_by past or before not_before", async () => {
    const now = Date.now();
    const far = await expectCode(
      alice.submit({ userId: "alice", notBefore: timestampFromMs(now + 31 * 24 * 3_600_000) }),
      Code.InvalidArgument,
      "not_before 31 days ahead",
    );
    assert.match(far.rawMessage, /not_before/);
    const past = await expectCode(
      alice.submit({ userId: "alice", startBy: timestampFromMs(now - 1_000) }),
      Code.InvalidArgument,
      "start_by past",
    );
    assert.match(past.rawMessage, /start_by/);
    const early = await expectCode(
      alice.submit({
        userId: "alice",
        notBefore: timestampFromMs(now + 60_000),
        startBy: timestampFromMs(now + 30_000),
      }),
      Code.InvalidArgument,
      "start_by before not_before",
    );
    assert.match(early.rawMessage, /start_by/);
    // A not_before in the past is now.
    await sleep(WINDOW_MS);
    const started = await alice.submit({ userId: "alice", notBefore: timestampFromMs(now - 60_000) });
    assert.equal(started.disposition, Disposition.STARTED);
  });

  test("CancelTask of a delayed task cancels it; it never runs and is no longer counted", async () => {
    const answer = await alice.submit({ userId: "alice", notBefore: timestampFromMs(Date.now() + 800) });
    const cancelled = await alice.cancelTask({ taskId: answer.taskId });
    assert.equal(cancelled.task?.state, TaskState.CANCELLED);
    await sleep(1_300);
    assert.equal((await alice.getTask({ taskId: answer.taskId })).task?.state, TaskState.CANCELLED);
    assert.ok(!(await ran()).has(answer.taskId));
    assert.equal((await firstSnapshot(alice, "alice")).queued, 0n);
  });

  test("a paused queue keeps a delayed task from starting when its moment comes; resumed, it runs", async () => {
    await sleep(WINDOW_MS);
    await alice.pauseQueue({ userId: "alice" });
    const answer = await alice.submit({ userId: "alice", notBefore: timestampFromMs(Date.now() + 300) });
    await sleep(1_000);
    assert.equal((await alice.getTask({ taskId: answer.taskId })).task?.state, TaskState.QUEUED, "parked");
    assert.ok(!(await ran()).has(answer.taskId));
    await alice.resumeQueue({ userId: "alice" });
    await pollUntil("the delayed task to run once resumed", async () => {
      const task = (await alice.getTask({ taskId: answer.taskId })).task!;
      return task.state === TaskState.SUCCEEDED ? task : undefined;
    });
  });
});
