// Workers anywhere (issue 18): WorkerService streams take tasks of their
// kinds from the same claim path as the server's own handlers, under the
// same windows and fairness; a worker is never sent more than it asked for;
// a worker that goes away (or falls silent) hands its tasks back, which run
// again on another; CancelTask reaches the worker; failures retry, and
// do_not_retry dead-letters at once; worker keys only run tasks. The server
// here has no handler for these kinds, so only the workers can run them.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { register } from "prom-client";
import { Code, type Client } from "@connectrpc/connect";
import { createClient } from "@connectrpc/connect";
import { createTollgateClient, createTransport } from "../../src/client/client.js";
import { createKeys } from "../../src/redis/keys.js";
import { usePrivateRedis } from "../support/fixture.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { ADMIN_KEY, ALICE_KEY, WORKER_KEY, writeKeyFile } from "../support/api-keys.js";
import { expectCode, pollUntil } from "../support/expect.js";
import { RawWorker } from "../support/raw-worker.js";
import { TaskState, type TaskService } from "../../gen/ts/tollgate/v1/task_service_pb.js";
import { WorkerService } from "../../gen/ts/tollgate/v1/worker_service_pb.js";

const ctx = usePrivateRedis("remote-workers");

/** GetTask until the task is in `state`; returns the task. */
async function waitForState(client: Client<typeof TaskService>, taskId: string, state: TaskState) {
  return pollUntil(
    `task ${taskId} ${TaskState[state]}`,
    async () => {
      const { task } = await client.getTask({ taskId });
      return task?.state === state ? task : undefined;
    },
    { timeoutMs: 20_000 },
  );
}

describe("remote workers on one server", () => {
  let server: TestServer;
  let client: Client<typeof TaskService>;
  const workers: RawWorker[] = [];
  const worker = (options: ConstructorParameters<typeof RawWorker>[1]): RawWorker => {
    const made = new RawWorker(server.address, { apiKey: WORKER_KEY, ...options });
    workers.push(made);
    return made;
  };

  before(async () => {
    server = await startTestServer(ctx.redis.url, {
      TOLLGATE_AUTH_KEYS: await writeKeyFile(ctx.dir),
      TOLLGATE_RATE_LIMITS: "1/1s",
      TOLLGATE_LEASE_MS: "1500",
      TOLLGATE_RETRY_BACKOFF_MS: "50",
      TOLLGATE_MAX_ATTEMPTS: "3",
    });
    client = createTollgateClient({ baseUrl: server.address, apiKey: ADMIN_KEY });
  });
  after(async () => {
    await Promise.all(workers.map((w) => w.kill()));
    await server?.close();
  });

  test("20 users' tasks run on the worker of their kind: windows held, users round-robin, all run, never over its concurrency", async () => {
    const resize = worker({ kinds: ["resize"], concurrency: 4 });
    await pollUntil("the welcome", () => resize.welcome);
    const ids: string[] = [];
    for (let round = 0; round < 3; round++) {
      for (let u = 0; u < 20; u++) {
        const { taskId } = await client.submit({ userId: `rr-${u}`, kind: "resize", payload: new Uint8Array([u]) });
        ids.push(taskId);
      }
    }
    await pollUntil("every task run", () => resize.received.length >= 60 && resize.inFlight.size === 0, {
      timeoutMs: 30_000,
    });
    const tasks = await Promise.all(ids.map((taskId) => waitForState(client, taskId, TaskState.SUCCEEDED)));
    assert.equal(new Set(resize.received.map((t) => t.taskId)).size, 60, "each task sent once");
    assert.ok(resize.maxInFlight <= 4, `at most 4 in flight (saw ${resize.maxInFlight})`);
    // Windows: under 1/1s, one user's starts (Redis' clock) are a window apart.
    const byUser = new Map<string, number[]>();
    for (const task of tasks) {
      const starts = byUser.get(task.userId) ?? [];
      starts.push(timestampMs(task.startedAt!));
      byUser.set(task.userId, starts);
    }
    for (const [userId, starts] of byUser) {
      starts.sort((a, b) => a - b);
      for (let i = 1; i < starts.length; i++) {
        assert.ok(starts[i]! - starts[i - 1]! >= 1_000, `${userId}: starts ${starts.join(", ")} closer than 1 s`);
      }
    }
    // Round-robin: every user's first start comes before any user's third.
    const firsts = [...byUser.values()].map((starts) => starts[0]!);
    const thirds = [...byUser.values()].map((starts) => starts[2]!);
    assert.ok(Math.max(...firsts) < Math.min(...thirds), "a user's third start before another's first");
    const payloads = resize.received.map((t) => `${t.userId}:${t.payload[0]}`);
    assert.ok(
      payloads.every((p) => p === `rr-${p.split(":")[1]}:${p.split(":")[1]}`),
      "payloads reach the worker",
    );
  });

  test("a worker that asked for 2 never has more than 2 in flight", async () => {
    const two = worker({
      kinds: ["pair"],
      concurrency: 2,
      run: () => new Promise((r) => setTimeout(() => r({ ok: true }), 150)),
    });
    await pollUntil("the welcome", () => two.welcome);
    for (let u = 0; u < 10; u++) await client.submit({ userId: `pair-${u}`, kind: "pair" });
    await pollUntil("all 10 run", () => two.received.length >= 10 && two.inFlight.size === 0, { timeoutMs: 20_000 });
    assert.equal(two.maxInFlight, 2);
  });

  test("a worker that goes away hands its tasks back: they run on another, attempt not counted", async () => {
    const holder = worker({ kinds: ["handoff"], concurrency: 3, run: () => "hold" });
    await pollUntil("the welcome", () => holder.welcome);
    const ids = [];
    for (let u = 0; u < 3; u++) ids.push((await client.submit({ userId: `ho-${u}`, kind: "handoff" })).taskId);
    await pollUntil("3 tasks held", () => holder.inFlight.size === 3);
    await holder.kill();
    const taker = worker({ kinds: ["handoff"], concurrency: 3 });
    const done = await Promise.all(ids.map((taskId) => waitForState(client, taskId, TaskState.SUCCEEDED)));
    assert.deepEqual(taker.received.map((t) => t.taskId).sort(), [...ids].sort());
    assert.ok(
      done.every((task) => task.attempts === 1),
      "the interrupted runs did not count",
    );
  });

  test("a worker silent past the lease loses its tasks and its stream", async () => {
    const silent = worker({ kinds: ["quiet"], concurrency: 1, run: () => "hold", heartbeat: false });
    await pollUntil("the welcome", () => silent.welcome);
    const { taskId } = await client.submit({ userId: "quiet-0", kind: "quiet" });
    await pollUntil("the task held", () => silent.inFlight.size === 1);
    const ended = await silent.ended;
    assert.equal((ended as { code?: Code }).code, Code.Unavailable);
    const other = worker({ kinds: ["quiet"], concurrency: 1 });
    await waitForState(client, taskId, TaskState.SUCCEEDED);
    assert.deepEqual(
      other.received.map((t) => t.taskId),
      [taskId],
    );
  });

  test("CancelTask reaches the worker running the task; the task ends cancelled", async () => {
    const holder = worker({ kinds: ["long"], concurrency: 1, run: () => "hold" });
    await pollUntil("the welcome", () => holder.welcome);
    const { taskId } = await client.submit({ userId: "long-0", kind: "long" });
    const task = await pollUntil("the task held", () => holder.received.find((t) => t.taskId === taskId));
    await client.cancelTask({ taskId });
    const cancel = await pollUntil("the cancel", () => holder.cancels.find((c) => c.taskId === taskId));
    assert.equal(cancel.attempt, task.attempt);
    holder.answer(task, { ok: false, error: cancel.reason });
    await waitForState(client, taskId, TaskState.CANCELLED);
  });

  test("a failure is retried; do_not_retry dead-letters at once", async () => {
    let failures = 0;
    const flaky = worker({
      kinds: ["flaky", "fatal"],
      concurrency: 2,
      run: (task) => {
        if (task.kind === "fatal") return { ok: false, error: "bad input", doNotRetry: true };
        if (task.attempt === 1) {
          failures++;
          return { ok: false, error: "try again" };
        }
        return { ok: true };
      },
    });
    await pollUntil("the welcome", () => flaky.welcome);
    const retried = await client.submit({ userId: "flaky-0", kind: "flaky" });
    const fatal = await client.submit({ userId: "fatal-0", kind: "fatal" });
    const ok = await waitForState(client, retried.taskId, TaskState.SUCCEEDED);
    assert.equal(ok.attempts, 2);
    assert.equal(failures, 1);
    const dead = await waitForState(client, fatal.taskId, TaskState.DEAD);
    assert.equal(dead.attempts, 1);
    assert.equal(dead.lastError, "bad input");
  });

  test("a user's tasks of the server's own kind and of a worker's kind run in their order", async () => {
    const mixed = worker({ kinds: ["remote"], concurrency: 1 });
    await pollUntil("the welcome", () => mixed.welcome);
    const ids = [];
    for (const kind of ["", "remote", "", "remote"]) {
      ids.push((await client.submit({ userId: "mixed-0", kind })).taskId);
    }
    const done = await Promise.all(ids.map((taskId) => waitForState(client, taskId, TaskState.SUCCEEDED)));
    const starts = done.map((task) => timestampMs(task.startedAt!));
    assert.deepEqual(
      [...starts].sort((a, b) => a - b),
      starts,
      "started in submission order",
    );
    assert.equal(mixed.received.length, 2);
  });

  test("a parked user whose head changes (cancelled, or a task put in front) is routed again at once", async () => {
    const { store } = server;
    const keys = createKeys(undefined, server.config.partitions);
    const parkedUnder = async (userId: string) => {
      const member = await server.redis.hget(keys.forUser(userId).parkedUsers, userId);
      return member?.split(" ")[0];
    };
    const queued = async (userId: string, kind: string, priority = 0) =>
      (
        (await store.admit({
          userId,
          payload: new Uint8Array(),
          kind,
          priority,
          idempotencyKey: "",
          rejectOverLimit: false,
          canStartNow: false,
        })) as { readonly taskId: string }
      ).taskId;
    // No worker runs "nobody-runs": its user stays parked under it...
    const first = await queued("swap-0", "nobody-runs");
    const second = await queued("swap-0", "");
    assert.equal(await pollUntil("parked", () => parkedUnder("swap-0")), "nobody-runs");
    // ...until that head is cancelled: the next (the server's own kind) runs.
    assert.equal(await store.cancelTask({ taskId: first, userId: "swap-0" }), "cancelled");
    await waitForState(client, second, TaskState.SUCCEEDED);
    assert.equal(await parkedUnder("swap-0"), undefined);

    // A task put in front of a parked head is routed by itself.
    const stuck = await queued("swap-1", "nobody-runs");
    assert.equal(await pollUntil("parked", () => parkedUnder("swap-1")), "nobody-runs");
    const urgent = await queued("swap-1", "", 9);
    await waitForState(client, urgent, TaskState.SUCCEEDED);
    assert.equal((await store.getTask(stuck))?.state, "queued");
  });

  test("ListWorkers lists the connected workers; keys: a user's cannot work or list, a worker's cannot submit", async () => {
    const listed = worker({ kinds: ["listed"], concurrency: 7, name: "lister" });
    await pollUntil("the welcome", () => listed.welcome);
    const admin = createClient(WorkerService, createTransport({ baseUrl: server.address, apiKey: ADMIN_KEY }));
    const entry = await pollUntil("the worker listed", async () =>
      (await admin.listWorkers({})).workers.find((w) => w.workerId === listed.welcome!.workerId),
    );
    assert.equal(entry.name, "lister");
    assert.deepEqual(entry.kinds, ["listed"]);
    assert.equal(entry.concurrency, 7);
    assert.match(entry.server, /:\d+$/);
    // The metrics of this process (the primary sums them over its workers).
    const gauge = async (name: string) =>
      (await register.getSingleMetric(name)!.get()).values.find((value) => value.labels.kind === "listed")?.value;
    assert.equal(await gauge("tollgate_remote_workers"), 1);
    assert.equal(await gauge("tollgate_remote_worker_slots"), 7);
    assert.equal(await gauge("tollgate_remote_worker_tasks"), 0);

    const user = new RawWorker(server.address, { apiKey: ALICE_KEY, kinds: ["x"], concurrency: 1 });
    assert.equal(((await user.ended) as { code?: Code }).code, Code.PermissionDenied);
    const none = new RawWorker(server.address, { kinds: ["x"], concurrency: 1 });
    assert.equal(((await none.ended) as { code?: Code }).code, Code.Unauthenticated);
    const asWorker = createTollgateClient({ baseUrl: server.address, apiKey: WORKER_KEY });
    await expectCode(asWorker.submit({ userId: "alice" }), Code.PermissionDenied);
  });

  test("a malformed session is refused naming what is wrong", async () => {
    const zero = new RawWorker(server.address, { apiKey: WORKER_KEY, kinds: ["z"], concurrency: 0 });
    const refused = (await zero.ended) as { code?: Code; rawMessage?: string };
    assert.equal(refused.code, Code.InvalidArgument);
    assert.match(refused.rawMessage ?? "", /hello\.concurrency/);
    const empty = new RawWorker(server.address, { apiKey: WORKER_KEY, kinds: [""], concurrency: 1 });
    assert.match(((await empty.ended) as { rawMessage?: string }).rawMessage ?? "", /hello\.kinds\[0\]/);
    const twice = new RawWorker(server.address, { apiKey: WORKER_KEY, kinds: ["t"], concurrency: 1 });
    await pollUntil("the welcome", () => twice.welcome);
    twice.send({ message: { case: "hello", value: { kinds: ["t"], concurrency: 1 } } });
    assert.equal(((await twice.ended) as { code?: Code }).code, Code.InvalidArgument);
  });
});

describe("TOLLGATE_REQUIRE_KNOWN_KINDS", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(ctx.redis.url, { TOLLGATE_REQUIRE_KNOWN_KINDS: "yes" });
  });
  after(async () => server?.close());

  test("Submit refuses a kind nothing runs, and accepts it once a worker for it connects", async () => {
    const error = await expectCode(server.client.submit({ userId: "k", kind: "later" }), Code.InvalidArgument);
    assert.match(error.rawMessage, /kind: no handler or connected worker runs kind "later"/);
    const later = new RawWorker(server.address, { kinds: ["later"], concurrency: 1 });
    try {
      await pollUntil("the welcome", () => later.welcome);
      const { taskId } = await pollUntil("Submit accepted", async () =>
        server.client.submit({ userId: "k", kind: "later" }).catch(() => undefined),
      );
      await pollUntil("the task run", () => later.received.some((t) => t.taskId === taskId));
    } finally {
      await later.kill();
    }
  });
});
