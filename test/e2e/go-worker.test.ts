// The Go example worker (examples/go/worker: gen/go and grpc-go) vets,
// builds, and works against the stub WorkerService
// (test/support/worker-stub.ts): its hello, an assignment logged in -log's
// exact format and answered completed, a cancel answered failed with the
// reason, heartbeats, and exit 0 on SIGTERM. Skips, saying so, when Go is
// not installed.
import assert from "node:assert/strict";
import { spawnSync, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { describeRun, runCommand, startCommand } from "../support/command.js";
import { pollUntil } from "../support/expect.js";
import { WorkerStub } from "../support/worker-stub.js";

const hasGo = spawnSync("go", ["version"]).status === 0;
const NO_GO = "go is not installed (https://go.dev/doc/install): the Go example worker was not tested";
// A cold Go build cache compiles grpc-go first (about 30 s on 2 cores); .ci/run warms it.
const GO_TIMEOUT_MS = 100_000;
const EXAMPLE = resolve("examples/go/worker");

/** The built example, running, and how it ended once it has. */
function startWorker(binary: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
  return startCommand(binary, args, { env });
}

describe("examples/go/worker", { skip: hasGo ? false : NO_GO }, () => {
  let dir: string;
  let binary: string;
  const stubs: WorkerStub[] = [];
  const children: ChildProcess[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "tollgate-go-worker-"));
    binary = join(dir, "worker");
  });

  after(async () => {
    for (const child of children) child.kill("SIGKILL");
    for (const stub of stubs) stub.close();
    await rm(dir, { recursive: true, force: true });
  });

  test("vets and builds", async () => {
    const vet = await runCommand("go", ["vet", "./..."], { cwd: EXAMPLE, timeoutMs: GO_TIMEOUT_MS });
    assert.equal(vet.code, 0, `go vet in examples/go/worker: ${describeRun(vet)}`);
    const build = await runCommand("go", ["build", "-o", binary, "."], { cwd: EXAMPLE, timeoutMs: GO_TIMEOUT_MS });
    assert.equal(build.code, 0, `go build in examples/go/worker: ${describeRun(build)}`);
  });

  test("says hello, logs an assignment as '<user_id> <task_id> <kind> <attempt> <unix ms>' and answers completed; SIGTERM exits 0", async () => {
    const stub = await WorkerStub.start();
    stubs.push(stub);
    const log = join(dir, "tasks.log");
    const worker = startWorker(binary, [
      "-addr",
      stub.addr,
      "-key",
      "worker-key",
      "-kind",
      "resize, email",
      "-concurrency",
      "2",
      "-name",
      "go-example",
      "-log",
      log,
    ]);
    children.push(worker.child);
    const session = await stub.session(0, 30_000);
    assert.deepEqual(session.hello?.kinds, ["resize", "email"]);
    assert.equal(session.hello?.concurrency, 2);
    assert.equal(session.hello?.name, "go-example");
    assert.deepEqual(session.metadata.get("authorization"), ["Bearer worker-key"]);

    const before = Date.now();
    session.assign({ taskId: "11.goTask", userId: "u-go", kind: "email", payload: new Uint8Array([1, 2]), attempt: 3 });
    const result = await session.result("11.goTask", 30_000);
    assert.equal(result.attempt, 3);
    assert.equal(result.outcome.case, "completed");
    const line = /^u-go 11\.goTask email 3 (\d+)\n$/.exec(await readFile(log, "utf8"));
    assert.ok(line, "exactly one line, in the documented format");
    const startedAt = Number(line[1]);
    assert.ok(startedAt >= before - 1_000 && startedAt <= Date.now(), `${startedAt} is the start, in unix ms`);

    worker.child.kill("SIGTERM");
    const exit = await worker.exited;
    assert.equal(exit.code, 0, describeRun(exit));
  });

  test("a cancel stops a sleeping task, answered failed with the reason; heartbeats arrive; the key from TOLLGATE_API_KEY", async () => {
    const stub = await WorkerStub.start({ heartbeatIntervalMs: 100 });
    stubs.push(stub);
    const log = join(dir, "cancel.log");
    const worker = startWorker(binary, ["-addr", stub.addr, "-kind", "slow", "-log", log, "-sleep", "1h"], {
      ...process.env,
      TOLLGATE_API_KEY: "env-key",
    });
    children.push(worker.child);
    const session = await stub.session(0, 30_000);
    assert.deepEqual(session.metadata.get("authorization"), ["Bearer env-key"]);
    session.assign({ taskId: "11.slow", userId: "u-go", kind: "slow" });
    await pollUntil(
      "the task to start (its log line)",
      async () => (await readFile(log, "utf8").catch(() => "")) !== "",
      {
        timeoutMs: 30_000,
      },
    );
    session.cancel("11.slow", 1, "cancelled (CancelTask)");
    const result = await session.result("11.slow", 30_000);
    assert.equal(result.outcome.case, "failed");
    assert.equal(result.outcome.value.error, "cancelled (CancelTask)");
    await pollUntil("two heartbeats", () => session.heartbeats >= 2, { timeoutMs: 30_000 });

    worker.child.kill("SIGTERM");
    const exit = await worker.exited;
    assert.equal(exit.code, 0, describeRun(exit));
  });
});
