// runWorker (src/client/worker.ts) against a stub WorkerService in this
// process (test/support/worker-stub.ts): the hello, assignments run and
// answered, failures and do_not_retry, cancels, heartbeats, the concurrency
// cap kept locally, reconnecting after UNAVAILABLE, giving up on
// PERMISSION_DENIED, and a graceful stop. No Redis, no server process.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, test } from "node:test";
import { status } from "@grpc/grpc-js";
import { Code, ConnectError } from "@connectrpc/connect";
import { DoNotRetryError } from "../../src/client/do-not-retry.js";
import { runWorker, type WorkerEvent, type WorkerHandle, type WorkerOptions } from "../../src/client/worker.js";
import type { WorkerTask } from "../../src/client/worker-session.js";
import { pollUntil } from "../support/expect.js";
import { WorkerStub } from "../support/worker-stub.js";

const stubs: WorkerStub[] = [];
const workers: WorkerHandle[] = [];
after(async () => {
  await Promise.all(workers.map((worker) => worker.stop()));
  for (const stub of stubs) stub.close();
});

async function startStub(options: Parameters<typeof WorkerStub.start>[0] = {}): Promise<WorkerStub> {
  const stub = await WorkerStub.start(options);
  stubs.push(stub);
  return stub;
}

function start(stub: WorkerStub, options: Partial<WorkerOptions> & Pick<WorkerOptions, "handler">): WorkerHandle {
  const worker = runWorker({ baseUrl: stub.baseUrl, kinds: ["k"], concurrency: 1, ...options });
  workers.push(worker);
  return worker;
}

/** A promise and what settles it: a handler that waits until the test lets it go. */
function gate(): { readonly promise: Promise<void>; readonly open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

const bytes = (text: string) => new TextEncoder().encode(text);

test("says hello with its kinds, concurrency and name (the key as a bearer token), runs an assignment and answers completed", async () => {
  const stub = await startStub();
  const seen: WorkerTask[] = [];
  const events: WorkerEvent[] = [];
  start(stub, {
    kinds: ["resize", "email"],
    concurrency: 3,
    name: "test-worker",
    apiKey: "worker-key",
    handler: (task) => {
      seen.push(task);
    },
    onEvent: (event) => events.push(event),
  });
  const session = await stub.session(0);
  assert.deepEqual(session.hello?.kinds, ["resize", "email"]);
  assert.equal(session.hello?.concurrency, 3);
  assert.equal(session.hello?.name, "test-worker");
  assert.deepEqual(session.metadata.get("authorization"), ["Bearer worker-key"]);

  session.assign({ taskId: "t1", userId: "u1", kind: "resize", payload: bytes("hello"), attempt: 2 });
  const result = await session.result("t1");
  assert.equal(result.attempt, 2);
  assert.equal(result.outcome.case, "completed");
  assert.equal(seen.length, 1);
  assert.deepEqual(
    { ...seen[0]!, payload: new TextDecoder().decode(seen[0]!.payload) },
    { taskId: "t1", userId: "u1", kind: "resize", payload: "hello", attempt: 2 },
  );
  await pollUntil("the connected event", () => events.some((event) => event.type === "connected"));
  const connected = events.find((event) => event.type === "connected");
  assert.equal(connected?.type === "connected" && connected.welcome.workerId, "stub-1");
});

test("a thrown error answers failed with its message; DoNotRetryError and doNotRetry: true answer do_not_retry", async () => {
  const stub = await startStub();
  start(stub, {
    concurrency: 3,
    handler: (task) => {
      if (task.taskId === "plain") throw new Error("disk full");
      if (task.taskId === "class") throw new DoNotRetryError("bad input");
      throw Object.assign(new Error("no such user"), { doNotRetry: true });
    },
  });
  const session = await stub.session(0);
  for (const taskId of ["plain", "class", "flag"]) session.assign({ taskId, userId: "u", kind: "k" });
  const outcomes = await Promise.all(["plain", "class", "flag"].map((taskId) => session.result(taskId)));
  assert.deepEqual(
    outcomes.map((result) => result.outcome.case === "failed" && { ...result.outcome.value }),
    [
      { error: "disk full", doNotRetry: false },
      { error: "bad input", doNotRetry: true },
      { error: "no such user", doNotRetry: true },
    ].map((value) => ({ ...value, $typeName: "tollgate.v1.TaskFailed" })),
  );
});

test("a cancel aborts the handler's signal and answers failed with the server's reason", async () => {
  const stub = await startStub();
  let started = false;
  let aborted: unknown;
  start(stub, {
    handler: (_task, { signal }) =>
      new Promise<void>((_resolve, reject) => {
        started = true;
        signal.addEventListener("abort", () => {
          aborted = signal.reason;
          reject(new Error("the handler's own message"));
        });
      }),
  });
  const session = await stub.session(0);
  session.assign({ taskId: "slow", userId: "u", kind: "k", attempt: 3 });
  await pollUntil("the handler to start", () => started);
  session.cancel("slow", 3, "cancelled (CancelTask)");
  const result = await session.result("slow");
  assert.equal(result.attempt, 3);
  assert.equal(result.outcome.case, "failed");
  assert.equal(result.outcome.value.error, "cancelled (CancelTask)");
  assert.equal(result.outcome.value.doNotRetry, false);
  assert.ok(aborted instanceof Error, "the handler's signal was aborted");
  assert.equal(aborted.message, "cancelled (CancelTask)");
});

test("a cancel of an assignment still waiting for a slot answers failed without running it", async () => {
  const stub = await startStub();
  const first = gate();
  const started: string[] = [];
  start(stub, {
    handler: async (task) => {
      started.push(task.taskId);
      await first.promise;
    },
  });
  const session = await stub.session(0);
  session.assign({ taskId: "first", userId: "u", kind: "k" });
  session.assign({ taskId: "second", userId: "u", kind: "k" });
  await pollUntil("first to start", () => started.includes("first"));
  session.cancel("second", 1, "timed out after 5000 ms");
  const second = await session.result("second");
  assert.equal(second.outcome.case === "failed" && second.outcome.value.error, "timed out after 5000 ms");
  first.open();
  assert.equal((await session.result("first")).outcome.case, "completed");
  assert.deepEqual(started, ["first"], "second never ran");
});

test("heartbeats arrive while nothing else is sent", async () => {
  const stub = await startStub({ heartbeatIntervalMs: 100 });
  start(stub, { handler: () => {} });
  const session = await stub.session(0);
  await pollUntil("three heartbeats", () => session.heartbeats >= 3);
});

test("never runs more than concurrency handlers at once: extra assignments wait for a slot", async () => {
  const stub = await startStub();
  const gates = new Map<string, ReturnType<typeof gate>>();
  let running = 0;
  let most = 0;
  start(stub, {
    concurrency: 2,
    handler: async (task) => {
      running++;
      most = Math.max(most, running);
      const taskGate = gate();
      gates.set(task.taskId, taskGate);
      await taskGate.promise;
      running--;
    },
  });
  const session = await stub.session(0);
  // The server would not send more than 2 unanswered; a stub (or a server after a lost stream) might.
  for (const taskId of ["a", "b", "c", "d", "e"]) session.assign({ taskId, userId: "u", kind: "k" });
  await pollUntil("two handlers running", () => gates.size === 2);
  await sleep(200); // room for a wrong third start
  assert.deepEqual([...gates.keys()], ["a", "b"], "only two started");
  gates.get("a")!.open();
  await pollUntil("c to start once a returned", () => gates.has("c"));
  assert.equal(gates.size, 3);
  for (const taskId of ["b", "c"]) gates.get(taskId)!.open();
  await pollUntil("d and e to start", () => gates.has("d") && gates.has("e"));
  for (const taskId of ["d", "e"]) gates.get(taskId)!.open();
  await pollUntil("five results", () => session.results.length === 5);
  assert.ok(session.results.every((result) => result.outcome.case === "completed"));
  assert.equal(most, 2, "at most two at once");
});

test("after the stream ends with UNAVAILABLE it reconnects with a new hello; a handler of the lost stream is aborted, unanswered", async () => {
  const stub = await startStub();
  const events: WorkerEvent[] = [];
  let abortedReason: unknown;
  const started: string[] = [];
  start(stub, {
    handler: (task, { signal }) => {
      started.push(task.taskId);
      if (task.taskId !== "lost") return;
      return new Promise<void>((_resolve, reject) => {
        signal.addEventListener("abort", () => {
          abortedReason = signal.reason;
          reject(signal.reason);
        });
      });
    },
    onEvent: (event) => events.push(event),
  });
  const first = await stub.session(0);
  first.assign({ taskId: "lost", userId: "u", kind: "k" });
  await pollUntil("the first task to start", () => started.includes("lost"));
  first.fail(status.UNAVAILABLE, "server restarting");

  const second = await stub.session(1);
  assert.deepEqual(second.hello?.kinds, ["k"]);
  const disconnected = events.find((event) => event.type === "disconnected");
  assert.ok(disconnected?.type === "disconnected");
  assert.equal(disconnected.error.code, Code.Unavailable);
  assert.ok(disconnected.reconnectInMs >= 50 && disconnected.reconnectInMs <= 100, "the first wait: 50 to 100 ms");
  assert.ok(abortedReason instanceof Error, "the lost stream's handler was aborted");

  // The new stream serves as the first did, and the lost task's result went nowhere.
  second.assign({ taskId: "next", userId: "u", kind: "k" });
  assert.equal((await second.result("next")).outcome.case, "completed");
  assert.deepEqual(
    [...first.results, ...second.results].map((result) => result.taskId),
    ["next"],
  );
});

test("reconnects when the server goes away and comes back on the same address", async () => {
  const first = await startStub();
  const events: WorkerEvent[] = [];
  start(first, { handler: () => {}, onEvent: (event) => events.push(event) });
  await first.session(0);
  first.close(); // the connection itself is gone, as in a restart
  await pollUntil(
    "a failed reconnect or two",
    () => events.filter((event) => event.type === "disconnected").length >= 2,
  );
  const second = await startStub({ port: first.port });
  const session = await second.session(0, 30_000);
  session.assign({ taskId: "after-restart", userId: "u", kind: "k" });
  assert.equal((await session.result("after-restart")).outcome.case, "completed");
});

test("gives up at once on PERMISSION_DENIED: done rejects with it and nothing reconnects", async () => {
  const stub = await startStub({
    refuse: { code: status.PERMISSION_DENIED, details: "a user's key cannot run workers" },
  });
  const worker = start(stub, { handler: () => {} });
  const error = await worker.done.then(
    () => assert.fail("done resolved"),
    (rejection: unknown) => rejection,
  );
  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.PermissionDenied);
  assert.equal(error.rawMessage, "a user's key cannot run workers");
  assert.equal(stub.sessions.length, 1, "one stream, no reconnect");
});

test("stop() lets a running handler finish and answers it, starts nothing new, half-closes; done resolves", async () => {
  const stub = await startStub();
  const running = gate();
  const started: string[] = [];
  const worker = start(stub, {
    handler: async (task) => {
      started.push(task.taskId);
      await running.promise;
    },
  });
  const session = await stub.session(0);
  session.assign({ taskId: "busy", userId: "u", kind: "k" });
  await pollUntil("busy to start", () => started.includes("busy"));
  const stopped = worker.stop();
  session.assign({ taskId: "late", userId: "u", kind: "k" }); // sent while stopping: left unanswered
  await sleep(100);
  running.open();
  await stopped;
  await worker.done;
  assert.deepEqual(started, ["busy"]);
  assert.deepEqual(
    session.results.map((result) => [result.taskId, result.outcome.case]),
    [["busy", "completed"]],
  );
  assert.ok(session.halfClosed, "the worker half-closed its stream after its results");
});

test("stop() past its grace aborts a handler that has not returned, without answering it", async () => {
  const stub = await startStub();
  let started = false;
  let aborted = false;
  const worker = start(stub, {
    stopGraceMs: 100,
    handler: (_task, { signal }) =>
      new Promise<void>((_resolve, reject) => {
        started = true;
        signal.addEventListener("abort", () => {
          aborted = true;
          reject(signal.reason);
        });
      }),
  });
  const session = await stub.session(0);
  session.assign({ taskId: "stuck", userId: "u", kind: "k" });
  await pollUntil("the handler to start", () => started);
  await worker.stop();
  await worker.done;
  assert.ok(aborted, "the handler's signal was aborted at the end of the grace");
  assert.deepEqual(session.results, [], "no result: the server hands the task back");
});

test("stop() resolves even when the server does not end the stream after the half-close (it is cancelled)", async () => {
  const stub = await startStub({ endOnHalfClose: false });
  const worker = start(stub, { handler: () => {} });
  const session = await stub.session(0);
  await worker.stop();
  await worker.done;
  assert.ok(session.halfClosed);
  await pollUntil("the stream to be over", () => session.closed);
});

test("aborting the signal option stops the worker as stop() does; an aborted one never connects", async () => {
  const stub = await startStub();
  const controller = new AbortController();
  const worker = start(stub, { handler: () => {}, signal: controller.signal });
  const session = await stub.session(0);
  controller.abort();
  await worker.done;
  await pollUntil("the stream to be half-closed", () => session.halfClosed);

  const early = start(stub, { handler: () => {}, signal: AbortSignal.abort() });
  await early.done;
  assert.equal(stub.sessions.length, 1, "no second stream");
});

test("runWorker refuses options the server would refuse, at once", () => {
  const handler = () => {};
  assert.throws(() => runWorker({ baseUrl: "http://127.0.0.1:1", kinds: [], concurrency: 1, handler }), /kinds/);
  assert.throws(() => runWorker({ baseUrl: "http://127.0.0.1:1", kinds: [""], concurrency: 1, handler }), /kinds/);
  for (const concurrency of [0, 1.5, 1001]) {
    assert.throws(
      () => runWorker({ baseUrl: "http://127.0.0.1:1", kinds: ["k"], concurrency, handler }),
      /concurrency/,
    );
  }
});
