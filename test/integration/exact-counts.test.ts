// Counts stay exact when tasks leave a queue other than by running: a
// WatchQueue stream (one user's, and every queue's) that began before counts
// the tasks CancelTask and PurgeQueue cancelled and the dead letters
// RequeueDeadLetters queued again, and the metrics count them, and the dead
// letters PurgeDeadLetters deleted, in the process that made the change; a
// running task CancelTask marked is counted when its attempt ends it
// cancelled.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { register } from "prom-client";
import { pollUntil } from "../support/expect.js";
import { usePrivateRedis } from "../support/fixture.js";
import { startTestServer, type TestServer } from "../support/server.js";
import {
  Disposition,
  ListState,
  TaskState,
  type WatchQueueResponse,
} from "../../gen/ts/tollgate/v1/task_service_pb.js";

const FIXTURE_HANDLERS = fileURLToPath(new URL("../fixtures/handlers.ts", import.meta.url));

const ctx = usePrivateRedis("exact-counts");

/** A counter's value as the metrics endpoint serves it (prom-client's text). */
async function metric(name: string): Promise<number> {
  const line = (await register.metrics()).split("\n").find((l) => l.startsWith(`${name} `));
  assert.ok(line, `${name} is served`);
  return Number(line.split(" ")[1]);
}

/** A WatchQueue stream with follow, its latest message kept. */
function watch(tollgate: TestServer, userId: string) {
  const stop = new AbortController();
  let latest: WatchQueueResponse | undefined;
  const reading = (async () => {
    try {
      for await (const message of tollgate.client.watchQueue({ userId, follow: true }, { signal: stop.signal })) {
        latest = message;
      }
    } catch {
      // Aborted at the end of the test.
    }
  })();
  return {
    /** Waits for a message that `holds`. */
    until: (what: string, holds: (message: WatchQueueResponse) => boolean) =>
      pollUntil(`${userId || "every queue"}: ${what}`, () => (latest && holds(latest) ? latest : undefined), {
        timeoutMs: 15_000,
      }),
    close: async () => {
      stop.abort();
      await reading;
    },
  };
}

describe("exact counts: cancelled, requeued and purged", () => {
  let tollgate: TestServer;

  before(async () => {
    tollgate = await startTestServer(ctx.redis.url, {
      TOLLGATE_RATE_LIMITS: "1/1h",
      TOLLGATE_HANDLER: FIXTURE_HANDLERS,
      TOLLGATE_MAX_ATTEMPTS: "1",
    });
  });
  after(async () => {
    await tollgate?.close();
  });

  /** The user's one start of the hour dead-letters; then `count` tasks stay queued. Returns their ids. */
  async function deadThenQueued(userId: string, count: number): Promise<string[]> {
    const first = await tollgate.client.submit({ userId, kind: "broken" });
    assert.equal(first.disposition, Disposition.STARTED);
    await pollUntil(`${userId}: a dead letter`, async () => {
      const { tasks } = await tollgate.client.listTasks({ userId, state: ListState.DEAD });
      return tasks.length === 1;
    });
    const queued: string[] = [];
    for (let i = 0; i < count; i++) {
      const answer = await tollgate.client.submit({ userId });
      assert.equal(answer.disposition, Disposition.QUEUED);
      queued.push(answer.taskId);
    }
    return queued;
  }

  test("cancelled and requeued since the stream began, per user and over every queue, and in the metrics", async () => {
    const queued = await deadThenQueued("carol", 4);
    const cancelledBefore = await metric("tollgate_tasks_cancelled_total");
    const requeuedBefore = await metric("tollgate_dead_letters_requeued_total");
    const carol = watch(tollgate, "carol");
    const everyQueue = watch(tollgate, "");
    try {
      await carol.until("4 queued, nothing cancelled yet", (m) => m.queued === 4n && m.cancelled === 0n);
      await everyQueue.until("the first snapshot", () => true);

      for (const taskId of queued.slice(0, 2)) await tollgate.client.cancelTask({ taskId });
      assert.equal((await tollgate.client.purgeQueue({ userId: "carol" })).cancelled, 2);
      const afterPurge = await carol.until("4 cancelled, none queued", (m) => m.cancelled === 4n && m.queued === 0n);
      assert.equal(afterPurge.requeued, 0n);
      await everyQueue.until("4 cancelled", (m) => m.cancelled === 4n);
      assert.equal(await metric("tollgate_tasks_cancelled_total"), cancelledBefore + 4);

      assert.equal((await tollgate.client.requeueDeadLetters({ userId: "carol" })).requeued, 1);
      await carol.until("1 requeued, queued again", (m) => m.requeued === 1n && m.queued === 1n && m.cancelled === 4n);
      await everyQueue.until("1 requeued", (m) => m.requeued === 1n);
      assert.equal(await metric("tollgate_dead_letters_requeued_total"), requeuedBefore + 1);
      // A second requeue finds nothing: the counts do not move.
      assert.equal((await tollgate.client.requeueDeadLetters({ userId: "carol" })).requeued, 0);
      assert.equal(await metric("tollgate_dead_letters_requeued_total"), requeuedBefore + 1);
    } finally {
      await carol.close();
      await everyQueue.close();
    }
  });

  for (const [kind, what] of [
    ["slow", "its handler aborted"],
    ["stubborn", "its handler ignoring the abort and then succeeding"],
  ] as const) {
    test(`a running task CancelTask marked ends CANCELLED and is counted once (${what})`, async () => {
      const userId = `running-${kind}`;
      const erin = watch(tollgate, userId);
      const everyQueue = watch(tollgate, "");
      try {
        await erin.until("the first snapshot", () => true);
        const atStart = await everyQueue.until("the first snapshot", () => true);
        const cancelledBefore = await metric("tollgate_tasks_cancelled_total");
        // Long enough that only the cancel ends its attempt within the poll.
        const duration = kind === "slow" ? "60000" : "1500";
        const running = await tollgate.client.submit({ userId, kind, payload: new TextEncoder().encode(duration) });
        assert.equal(running.disposition, Disposition.STARTED);
        await erin.until("1 running", (m) => m.running === 1n);
        await tollgate.client.cancelTask({ taskId: running.taskId });
        await erin.until("1 cancelled, none running", (m) => m.cancelled === 1n && m.running === 0n);
        await everyQueue.until("1 more cancelled", (m) => m.cancelled === atStart.cancelled + 1n);
        const { task } = await tollgate.client.getTask({ taskId: running.taskId });
        assert.equal(task?.state, TaskState.CANCELLED);
        assert.equal(await metric("tollgate_tasks_cancelled_total"), cancelledBefore + 1);
        if (kind === "stubborn") {
          // The handler ends after the cancel: nothing is counted again.
          await new Promise((resolve) => setTimeout(resolve, 1_800));
          const { task: later } = await tollgate.client.getTask({ taskId: running.taskId });
          assert.equal(later?.state, TaskState.CANCELLED);
          assert.equal(await metric("tollgate_tasks_cancelled_total"), cancelledBefore + 1);
          const latest = await erin.until("still 1 cancelled, nothing succeeded", (m) => m.cancelled === 1n);
          assert.equal(latest.completed, 0n);
        }
      } finally {
        await erin.close();
        await everyQueue.close();
      }
    });
  }

  test("purged dead letters are counted in tollgate_dead_letters_purged_total", async () => {
    await deadThenQueued("dave", 0);
    const before = await metric("tollgate_dead_letters_purged_total");
    assert.equal((await tollgate.client.purgeDeadLetters({ userId: "dave" })).purged, 1);
    assert.equal(await metric("tollgate_dead_letters_purged_total"), before + 1);
    assert.equal((await tollgate.client.purgeDeadLetters({ userId: "dave" })).purged, 0);
    assert.equal(await metric("tollgate_dead_letters_purged_total"), before + 1);
  });
});
