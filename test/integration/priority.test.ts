// SubmitRequest.priority: a user's queued tasks start higher priority first,
// in submission order within a level, never beyond the user's windows. A
// task's place (Submit's queue_position, ListTasks) says so; a task that goes
// back to its queue (a retry) goes ahead of its own level, behind higher
// ones; a requeued dead letter joins the back of its level; cancelling keeps
// the places of later submissions right; the counts that place tasks do not
// keep the user's stats hash alive once its queue is empty. Queues are built
// paused so that the order is the test's, not the drainer's.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, type Client } from "@connectrpc/connect";
import { createTollgateClient } from "../../src/client/client.js";
import { expectCode, pollUntil } from "../support/expect.js";
import { usePrivateRedis } from "../support/fixture.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { keys } from "../support/store.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  Disposition,
  ListState,
  type SubmitRequestSchema,
  type TaskService,
  TaskState,
} from "../../gen/ts/tollgate/v1/task_service_pb.js";

const FIXTURE_HANDLERS = fileURLToPath(new URL("../fixtures/handlers.ts", import.meta.url));
/** 2 starts per 1 s window. */
const LIMIT = 2;
const WINDOW_MS = 1_000;
/** Redis' clock stamps started_at and times the windows; ms of rounding between the two. */
const TOLERANCE_MS = 50;

const ctx = usePrivateRedis("priority");

describe(`priorities within a user's queue, ${LIMIT}/1s`, () => {
  let tollgate: TestServer;
  let client: Client<typeof TaskService>;

  before(async () => {
    tollgate = await startTestServer(ctx.redis.url, {
      TOLLGATE_RATE_LIMITS: `${LIMIT}/1s`,
      TOLLGATE_HANDLER: FIXTURE_HANDLERS,
      TOLLGATE_MAX_ATTEMPTS: "3",
      TOLLGATE_RETRY_BACKOFF_MS: "400",
    });
    client = createTollgateClient({ baseUrl: tollgate.address });
  });
  after(async () => {
    await tollgate?.close();
  });

  /** Submits in order; answers each task's id and queue position. */
  async function submitAll(userId: string, requests: readonly MessageInitShape<typeof SubmitRequestSchema>[]) {
    const answers = [];
    for (const request of requests) answers.push(await client.submit({ userId, ...request }));
    return answers;
  }

  async function queuedIds(userId: string): Promise<string[]> {
    const page = await client.listTasks({ userId, state: ListState.QUEUED, pageSize: 100 });
    return page.tasks.map((task) => task.taskId);
  }

  test("higher first, submission order within a level; places say so; starts follow them at the policy's pace", async () => {
    await client.pauseQueue({ userId: "pat" });
    const levels = [0, 0, 5, 9, 5, 0, 9];
    const answers = await submitAll(
      "pat",
      levels.map((priority) => ({ priority })),
    );
    for (const answer of answers) assert.equal(answer.disposition, Disposition.QUEUED);
    const [a, b, c, d, e, f, g] = answers.map((answer) => answer.taskId);
    // Each Submit's place when it was made: 0s go to the back, a 5 behind
    // the 9s and 5s, a 9 behind the 9s.
    assert.deepEqual(
      answers.map((answer) => answer.queuePosition),
      [1, 2, 1, 1, 3, 6, 2],
    );
    const expected = [d, g, c, e, a, b, f];
    assert.deepEqual(await queuedIds("pat"), expected, "ListTasks: the queue in priority order");
    const listed = (await client.listTasks({ userId: "pat", state: ListState.QUEUED })).tasks;
    assert.deepEqual(
      listed.map((task) => [task.priority, task.queuePosition]),
      [
        [9, 1],
        [9, 2],
        [5, 3],
        [5, 4],
        [0, 5],
        [0, 6],
        [0, 7],
      ],
    );
    assert.equal((await client.getTask({ taskId: c! })).task?.priority, 5, "GetTask shows the priority");

    await client.resumeQueue({ userId: "pat" });
    const done = await pollUntil(
      "pat's 7 tasks to run",
      async () => {
        const tasks = await Promise.all(
          expected.map(async (taskId) => (await client.getTask({ taskId: taskId! })).task!),
        );
        return tasks.every((task) => task.state === TaskState.SUCCEEDED) ? tasks : undefined;
      },
      { timeoutMs: 20_000 },
    );
    const starts = done.map((task) => timestampMs(task.startedAt!));
    for (let i = 1; i < starts.length; i++) {
      assert.ok(starts[i - 1]! <= starts[i]!, `task ${i} of the expected order started before task ${i - 1}`);
    }
    const sorted = [...starts].sort((x, y) => x - y);
    for (let i = 0; i + LIMIT < sorted.length; i++) {
      const gap = sorted[i + LIMIT]! - sorted[i]!;
      assert.ok(gap >= WINDOW_MS - TOLERANCE_MS, `starts ${i} and ${i + LIMIT} only ${gap} ms apart: over the window`);
    }
  });

  test("cancelling a task leaves later places right; a purged queue leaves no count behind", async () => {
    await client.pauseQueue({ userId: "cara" });
    const [x1, , , y1, y2] = (await submitAll("cara", [{}, {}, {}, { priority: 5 }, { priority: 5 }])).map(
      (answer) => answer.taskId,
    );
    await client.cancelTask({ taskId: y1! });
    // Without the count going down with the cancel, y3 would land behind x1.
    const y3 = await client.submit({ userId: "cara", priority: 5 });
    assert.equal(y3.queuePosition, 2, "behind the one 5 left, ahead of the 0s");
    const order = await queuedIds("cara");
    assert.deepEqual(order.slice(0, 3), [y2, y3.taskId, x1]);

    const stats = keys.forUser("cara").stats("cara");
    assert.equal(await tollgate.redis.hget(stats, "p5"), "2");
    assert.equal(await tollgate.redis.ttl(stats), -1, "kept while tasks above priority 0 are queued");
    await client.purgeQueue({ userId: "cara" });
    const after = await tollgate.redis.hmget(stats, "p", "p5");
    assert.deepEqual(after, ["0", "0"]);
    assert.ok((await tollgate.redis.ttl(stats)) > 0, "the stats hash expires again once nothing is queued above 0");
  });

  test("a retry goes back ahead of its own level, behind a higher one", async () => {
    // flaky fails its first two attempts; the first starts at Submit.
    const first = await client.submit({ userId: "rita", kind: "flaky", priority: 5 });
    assert.equal(first.disposition, Disposition.STARTED);
    await client.pauseQueue({ userId: "rita" });
    const [high, same, low] = (await submitAll("rita", [{ priority: 9 }, { priority: 5 }, {}])).map(
      (answer) => answer.taskId,
    );
    const order = await pollUntil(
      "the failed attempt's retry to go back to the queue",
      async () => {
        const ids = await queuedIds("rita");
        return ids.length === 4 ? ids : undefined;
      },
      { timeoutMs: 15_000 },
    );
    assert.deepEqual(order, [high, first.taskId, same, low]);
    await client.purgeQueue({ userId: "rita" });
  });

  test("a requeued dead letter joins the back of its level", async () => {
    // broken always fails: three attempts, then a dead letter.
    const dead = await client.submit({ userId: "dora", kind: "broken", priority: 5 });
    await pollUntil(
      "the task to die",
      async () => (await client.getTask({ taskId: dead.taskId })).task?.state === TaskState.DEAD,
      { timeoutMs: 15_000 },
    );
    await client.pauseQueue({ userId: "dora" });
    const [low, high, same] = (await submitAll("dora", [{}, { priority: 9 }, { priority: 5 }])).map(
      (answer) => answer.taskId,
    );
    assert.equal((await client.requeueDeadLetters({ userId: "dora" })).requeued, 1);
    assert.deepEqual(await queuedIds("dora"), [high, same, dead.taskId, low]);
    await client.purgeQueue({ userId: "dora" });
  });

  test("a priority above 9 is refused, naming the field", async () => {
    const error = await expectCode(client.submit({ userId: "ivan", priority: 10 }), Code.InvalidArgument);
    assert.match(error.rawMessage, /priority/);
  });
});
