// `tollgate worker --exec` (bin/tollgate.js, as a user runs it) against the
// stub WorkerService (test/support/worker-stub.ts): the payload reaches the
// command's stdin and the task its environment, exit codes decide the
// result (0 completed, 100 do_not_retry, others failed with stderr's last
// line), a cancel kills the command's process group, and SIGTERM stops the
// worker after its running command finishes.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { status } from "@grpc/grpc-js";
import { describeRun, runCommand, startCommand, type StartedCommand } from "../support/command.js";
import { pollUntil } from "../support/expect.js";
import { WorkerStub, type StubSession } from "../support/worker-stub.js";

const BIN = resolve("bin/tollgate.js");

/** The test's environment without any TOLLGATE_* setting, plus `extra`. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith("TOLLGATE_")) env[name] = value;
  return { ...env, ...extra };
}

/** A running `tollgate worker`, and how it ended once it has. */
function startWorker(args: string[], env: NodeJS.ProcessEnv): StartedCommand {
  return startCommand(process.execPath, [BIN, "worker", ...args], { env });
}

/** Whether a process runs: a zombie (exited, not reaped by a container's init) does not count. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = existsSync(`/proc/${pid}/stat`) ? readFileSync(`/proc/${pid}/stat`, "utf8") : "";
  return !/^\d+ \(.*\) Z/.test(stat);
}

// One command for every case, chosen by the task's kind.
const EXEC = `case "$TOLLGATE_KIND" in
  copy) cat > "$OUT/$TOLLGATE_TASK_ID"; echo "$TOLLGATE_USER_ID $TOLLGATE_KIND $TOLLGATE_ATTEMPT" > "$OUT/$TOLLGATE_TASK_ID.env"; echo "copied $TOLLGATE_TASK_ID" ;;
  fail) echo "a first line" >&2; echo "disk full" >&2; echo >&2; exit 1 ;;
  give-up) echo "malformed payload" >&2; exit 100 ;;
  hang) sleep 600 & echo $! > "$OUT/$TOLLGATE_TASK_ID.pid"; wait ;;
  wait) touch "$OUT/$TOLLGATE_TASK_ID.started"; until [ -e "$OUT/go" ]; do sleep 0.05; done ;;
esac`;

describe("tollgate worker --exec", () => {
  let stub: WorkerStub;
  let out: string;
  let worker: ReturnType<typeof startWorker>;
  let session: StubSession;

  before(async () => {
    stub = await WorkerStub.start();
    out = await mkdtemp(join(tmpdir(), "tollgate-worker-cli-"));
    worker = startWorker(
      [
        "--addr",
        stub.addr,
        "--api-key",
        "worker-key",
        "--kind",
        "copy",
        "--kind",
        "fail",
        "--kind",
        "give-up",
        "--kind",
        "hang",
        "--kind",
        "wait",
        "--concurrency",
        "4",
        "--name",
        "cli-test",
        "--exec",
        EXEC,
      ],
      cleanEnv({ OUT: out }),
    );
    session = await stub.session(0, 30_000).catch(async (error: unknown) => {
      worker.child.kill("SIGKILL");
      throw new Error(`${(error as Error).message}\n${describeRun(await worker.exited)}`);
    });
  });

  after(async () => {
    worker.child.kill("SIGKILL");
    stub.close();
    await rm(out, { recursive: true, force: true });
  });

  test("says hello with its kinds, concurrency and name, the key as a bearer token", () => {
    assert.deepEqual(session.hello?.kinds, ["copy", "fail", "give-up", "hang", "wait"]);
    assert.equal(session.hello?.concurrency, 4);
    assert.equal(session.hello?.name, "cli-test");
    assert.deepEqual(session.metadata.get("authorization"), ["Bearer worker-key"]);
  });

  test("the payload reaches the command's stdin and the task its environment; exit 0 answers completed", async () => {
    session.assign({
      taskId: "t-copy",
      userId: "u7",
      kind: "copy",
      payload: new TextEncoder().encode("the payload\n"),
      attempt: 2,
    });
    const result = await session.result("t-copy", 30_000);
    assert.equal(result.outcome.case, "completed");
    assert.equal(result.attempt, 2);
    assert.equal(await readFile(join(out, "t-copy"), "utf8"), "the payload\n");
    assert.equal(await readFile(join(out, "t-copy.env"), "utf8"), "u7 copy 2\n");
  });

  test("exit 1 answers failed with the last line of stderr", async () => {
    session.assign({ taskId: "t-fail", userId: "u7", kind: "fail" });
    const result = await session.result("t-fail", 30_000);
    assert.equal(result.outcome.case, "failed");
    assert.equal(result.outcome.value.error, "exit 1: disk full");
    assert.equal(result.outcome.value.doNotRetry, false);
  });

  test("exit 100 answers failed with do_not_retry", async () => {
    session.assign({ taskId: "t-give-up", userId: "u7", kind: "give-up" });
    const result = await session.result("t-give-up", 30_000);
    assert.equal(result.outcome.case, "failed");
    assert.equal(result.outcome.value.error, "exit 100: malformed payload");
    assert.equal(result.outcome.value.doNotRetry, true);
  });

  test("a cancel kills the command's whole process group and answers failed with the reason", async () => {
    session.assign({ taskId: "t-hang", userId: "u7", kind: "hang" });
    const pidFile = join(out, "t-hang.pid");
    const pid = await pollUntil(
      "the command's background sleep",
      async () => Number((await readFile(pidFile, "utf8").catch(() => "")).trim()) || undefined,
      { timeoutMs: 30_000 },
    );
    assert.ok(isAlive(pid));
    session.cancel("t-hang", 1, "cancelled (CancelTask)");
    const result = await session.result("t-hang", 30_000);
    assert.equal(result.outcome.case, "failed");
    assert.equal(result.outcome.value.error, "cancelled (CancelTask)");
    await pollUntil("the background sleep, in the command's group, to be gone", () => !isAlive(pid));
  });

  test("SIGTERM stops the worker once its running command has finished and been answered; exit 0", async () => {
    session.assign({ taskId: "t-wait", userId: "u7", kind: "wait" });
    await pollUntil("t-wait's command to start", () => existsSync(join(out, "t-wait.started")), { timeoutMs: 30_000 });
    worker.child.kill("SIGTERM");
    await pollUntil("the worker to say it is stopping", () => worker.stderr().includes("SIGTERM: stopping"));
    assert.deepEqual(
      session.results.filter((result) => result.taskId === "t-wait"),
      [],
      "not answered while its command runs",
    );
    await writeFile(join(out, "go"), "");
    const result = await session.result("t-wait", 30_000);
    assert.equal(result.outcome.case, "completed");
    const exit = await worker.exited;
    assert.equal(exit.code, 0, describeRun(exit));
    assert.match(
      exit.stderr,
      /tollgate worker: connected as stub-1 \(kinds copy, fail, give-up, hang, wait; concurrency 4\)/,
    );
    assert.match(exit.stderr, /t-fail attempt 1 \(kind fail, user u7\): failed: exit 1: disk full/);
    assert.match(exit.stdout, /^copied t-copy$/m, "the command's stdout passes through unprefixed");
    assert.ok(session.halfClosed, "the stream was closed by the worker");
  });
});

test("tollgate worker refuses missing flags (exit 2) and a key without the worker role (exit 1)", async () => {
  const missing = await runCommand(process.execPath, [BIN, "worker", "--exec", "true"], { env: cleanEnv({}) });
  assert.equal(missing.code, 2, describeRun(missing));
  assert.match(missing.stderr, /tollgate worker: --kind is required/);

  const stub = await WorkerStub.start({ refuse: { code: status.PERMISSION_DENIED, details: "a user's key" } });
  try {
    const refused = await runCommand(
      process.execPath,
      [BIN, "worker", "--addr", stub.addr, "--kind", "k", "--exec", "true"],
      { env: cleanEnv({}), timeoutMs: 60_000 },
    );
    assert.equal(refused.code, 1, describeRun(refused));
    assert.match(refused.stderr, /tollgate worker: PERMISSION_DENIED: a user's key/);
  } finally {
    stub.close();
  }
});

test("tollgate worker --help names its flags and the exit codes' meaning", async () => {
  const run = await runCommand(process.execPath, [BIN, "worker", "--help"], { env: cleanEnv({}) });
  assert.equal(run.code, 0, describeRun(run));
  for (const text of [
    "--kind KIND",
    "--exec COMMAND",
    "--concurrency N",
    "--name NAME",
    "--grace",
    "100",
    "TOLLGATE_TASK_ID",
  ]) {
    assert.ok(run.stdout.includes(text), `--help mentions ${text}`);
  }
  const usage = await runCommand(process.execPath, [BIN, "--help"], { env: cleanEnv({}) });
  assert.match(usage.stdout, /^ {2}worker {4}/m, "the usage lists worker");
});
