// Issue 18's acceptance, as a user runs it: `tollgate serve` (2 processes,
// API keys on, 1/1s), the Go example worker (examples/go/worker, gen/go and
// grpc-go only) for one kind and `tollgate worker --exec` (runWorker, the
// TypeScript library) for another. 20 users' tasks of both kinds run on the
// worker of their kind, each once, no user's starts closer than its window,
// users served round-robin. Then a Go worker holding tasks is SIGKILLed:
// they run again on another worker, none lost, the interrupted attempt not
// counted. Skips, saying so, without Go.
import assert from "node:assert/strict";
import { spawnSync, type ChildProcess } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { Client } from "@connectrpc/connect";
import { createTollgateClient } from "../../src/client/client.js";
import { describeRun, runCommand, startCommand } from "../support/command.js";
import { pollUntil } from "../support/expect.js";
import { usePrivateRedis } from "../support/fixture.js";
import { type ServeProcess, serveSettings, startServeProcess } from "../support/serve-process.js";
import { ADMIN_KEY, WORKER_KEY, writeKeyFile } from "../support/api-keys.js";
import { TaskState, type Task, type TaskService } from "../../gen/ts/tollgate/v1/task_service_pb.js";

const hasGo = spawnSync("go", ["version"]).status === 0;
const NO_GO = "go is not installed (https://go.dev/doc/install): the Go worker acceptance was not run";
const BIN = resolve("bin/tollgate.js");
const GO_WORKER = resolve("examples/go/worker");
const USERS = 20;

describe("workers anywhere: a Go worker and a TypeScript worker under one policy", {
  skip: hasGo ? false : NO_GO,
}, () => {
  const ctx = usePrivateRedis("workers");
  let serve: ServeProcess;
  let addr: string;
  let client: Client<typeof TaskService>;
  let goBinary: string;
  const children: ChildProcess[] = [];
  const spawnWorker = (command: string, args: string[], env: Record<string, string> = {}): ChildProcess => {
    const started = startCommand(command, args, { env: { ...process.env, ...env } });
    void started.exited.then(({ code, signal, stderr }) => {
      if (code !== 0 && signal !== "SIGKILL" && signal !== "SIGTERM") console.error(`worker exited ${code}: ${stderr}`);
    });
    children.push(started.child);
    return started.child;
  };
  const goWorker = (kind: string, log: string, extra: string[] = []) =>
    spawnWorker(goBinary, ["-addr", addr, "-kind", kind, "-concurrency", "4", "-log", log, ...extra], {
      TOLLGATE_API_KEY: WORKER_KEY,
    });

  before(async () => {
    serve = await startServeProcess({
      ...serveSettings(ctx.redis.url, ctx.dir),
      TOLLGATE_RATE_LIMITS: "1/1s",
      TOLLGATE_LEASE_MS: "3000",
      TOLLGATE_AUTH_KEYS: await writeKeyFile(ctx.dir),
    });
    addr = `127.0.0.1:${serve.port}`;
    goBinary = join(ctx.dir, "go-worker");
    const build = await runCommand("go", ["build", "-o", goBinary, "."], { cwd: GO_WORKER, timeoutMs: 100_000 });
    assert.equal(build.code, 0, `go build in examples/go/worker: ${describeRun(build)}`);
    client = createTollgateClient({ baseUrl: `http://${addr}`, apiKey: ADMIN_KEY });
  });
  after(async () => {
    for (const child of children) child.kill("SIGKILL");
    serve?.child.kill("SIGTERM");
    await serve?.exited;
  });

  test("20 users, two kinds: every task runs once on its kind's worker, windows held, round-robin", async () => {
    const goLog = join(ctx.dir, "go.log");
    const tsLog = join(ctx.dir, "ts.log");
    await writeFile(tsLog, "");
    goWorker("resize", goLog);
    spawnWorker(
      process.execPath,
      [
        BIN,
        "worker",
        "--addr",
        addr,
        "--kind",
        "email",
        "--concurrency",
        "4",
        "--exec",
        `echo "$TOLLGATE_USER_ID $TOLLGATE_TASK_ID" >> ${tsLog}`,
      ],
      { TOLLGATE_API_KEY: WORKER_KEY },
    );
    const ids: string[] = [];
    for (const kind of ["resize", "email", "resize", "email"]) {
      for (let u = 0; u < USERS; u++) ids.push((await client.submit({ userId: `user-${u}`, kind })).taskId);
    }
    const tasks = await pollUntil(
      "every task succeeded",
      async () => {
        const all = await Promise.all(ids.map(async (taskId) => (await client.getTask({ taskId })).task!));
        return all.every((task) => task.state === TaskState.SUCCEEDED) ? all : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    const lines = async (path: string) => (await readFile(path, "utf8")).split("\n").filter(Boolean);
    const ranOnGo = (await lines(goLog)).map((line) => line.split(" ")[1]);
    const ranOnTs = (await lines(tsLog)).map((line) => line.split(" ")[1]);
    const expect = (kind: string) =>
      tasks
        .filter((task) => task.kind === kind)
        .map((task) => task.taskId)
        .sort();
    assert.deepEqual([...ranOnGo].sort(), expect("resize"), "each resize task ran once, on the Go worker");
    assert.deepEqual([...ranOnTs].sort(), expect("email"), "each email task ran once, on the TypeScript worker");
    assert.ok(tasks.every((task) => task.attempts === 1));

    const byUser = new Map<string, Task[]>();
    for (const task of tasks) byUser.set(task.userId, [...(byUser.get(task.userId) ?? []), task]);
    const starts = (user: Task[]) => user.map((task) => timestampMs(task.startedAt!)).sort((a, b) => a - b);
    for (const [userId, user] of byUser) {
      const at = starts(user);
      for (let i = 1; i < at.length; i++) {
        assert.ok(at[i]! - at[i - 1]! >= 1_000, `${userId}: two starts in one 1 s window (${at.join(", ")})`);
      }
      // One user's tasks start in their order, whatever their kinds.
      const inOrder = [...user].sort((a, b) => timestampMs(a.submittedAt!) - timestampMs(b.submittedAt!));
      assert.deepEqual(
        inOrder.map((task) => task.taskId),
        [...user].sort((a, b) => timestampMs(a.startedAt!) - timestampMs(b.startedAt!)).map((task) => task.taskId),
        `${userId}: started out of order`,
      );
    }
    const firsts = [...byUser.values()].map((user) => starts(user)[0]!);
    const thirds = [...byUser.values()].map((user) => starts(user)[2]!);
    assert.ok(Math.max(...firsts) < Math.min(...thirds), "every user's first start before any user's third");
  });

  test("SIGKILL a Go worker with tasks in flight: they run again on another worker, none lost", async () => {
    const slowLog = join(ctx.dir, "slow.log");
    const takerLog = join(ctx.dir, "taker.log");
    const slow = goWorker("slow", slowLog, ["-sleep", "60s"]);
    const ids: string[] = [];
    for (let u = 0; u < 3; u++) ids.push((await client.submit({ userId: `slow-${u}`, kind: "slow" })).taskId);
    await pollUntil(
      "3 tasks running on the slow worker",
      async () => (await readFile(slowLog, "utf8").catch(() => "")).split("\n").filter(Boolean).length === 3,
      { timeoutMs: 30_000 },
    );
    slow.kill("SIGKILL");
    goWorker("slow", takerLog);
    const done = await pollUntil(
      "the 3 tasks succeeded on the other worker",
      async () => {
        const all = await Promise.all(ids.map(async (taskId) => (await client.getTask({ taskId })).task!));
        return all.every((task) => task.state === TaskState.SUCCEEDED) ? all : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 250 },
    );
    const taken = (await readFile(takerLog, "utf8")).split("\n").filter(Boolean);
    assert.deepEqual(taken.map((line) => line.split(" ")[1]).sort(), [...ids].sort());
    assert.ok(
      done.every((task) => task.attempts === 1),
      "the killed worker's attempts were not counted",
    );
  });
});
