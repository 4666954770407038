// The generated Go client (gen/go, grpc-go) against a real
// `tollgate serve`: the Go end-to-end test in test/go calls Submit, GetTask and
// WatchQueue (until drained), and the example program in examples/go runs.
// Skips, saying so, when Go is not installed.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { test } from "node:test";
import { describeRun, runCommand } from "../support/command.js";
import { useServeProcess } from "../support/fixture.js";

const hasGo = spawnSync("go", ["version"]).status === 0;
const NO_GO = "go is not installed (https://go.dev/doc/install): the Go client was not tested";
// A cold Go build cache compiles grpc-go first (about 30 s on 2 cores); .ci/run warms it.
const GO_TIMEOUT_MS = 100_000;

// The default policy (1/1s,20/1m): the Go test expects one start, then a queue.
// (Started even without Go, for simplicity: the tests then only say they skipped.)
const served = useServeProcess("go", { TOLLGATE_RATE_LIMITS: "1/1s,20/1m" });

function go(args: string[], cwd: string) {
  return runCommand("go", args, {
    cwd: resolve(cwd),
    env: { ...process.env, TOLLGATE_ADDR: served.addr },
    timeoutMs: GO_TIMEOUT_MS,
  });
}

test("go test in test/go: Submit, GetTask, WatchQueue until drained, status codes and health, over grpc-go", async (t) => {
  if (!hasGo) return t.skip(NO_GO);
  const vet = await go(["vet", "./..."], "test/go");
  assert.equal(vet.code, 0, `go vet in test/go: ${describeRun(vet)}`);
  const run = await go(["test", "-count=1", "-v", "./..."], "test/go");
  assert.equal(run.code, 0, `go test: ${describeRun(run)}`);
  for (const name of ["TestSubmitGetTaskAndWatchQueueUntilDrained", "TestErrorsAreStatusCodes", "TestHealthServing"]) {
    assert.match(run.stdout, new RegExp(`--- PASS: ${name} `), `${name} ran and passed: ${describeRun(run)}`);
  }
  assert.doesNotMatch(run.stdout, /--- SKIP/, "no Go test skipped");
});

test("examples/go vets, builds and runs: submits, reads a task back, and watches the queue drain", async (t) => {
  if (!hasGo) return t.skip(NO_GO);
  const vet = await go(["vet", "./..."], "examples/go");
  assert.equal(vet.code, 0, `go vet in examples/go: ${describeRun(vet)}`);
  const run = await go(["run", ".", "-addr", served.addr, "-user", "go-example", "-count", "3"], "examples/go");
  assert.equal(run.code, 0, `go run examples/go: ${describeRun(run)}`);
  const lines = run.stdout.trim().split("\n");
  assert.equal(
    lines.filter((line) => / DISPOSITION_(STARTED|QUEUED), queue position \d+/.test(line)).length,
    3,
    run.stdout,
  );
  assert.ok(
    lines.some((line) => /^task \d+\.[\w-]{22}: TASK_STATE_\w+, \d attempt\(s\)$/.test(line)),
    run.stdout,
  );
  assert.match(lines.at(-1)!, /^queue go-example: 0 queued, 0 running, \d+ completed, drained true$/, run.stdout);
  assert.ok(
    lines.filter((line) => line.startsWith("queue go-example:")).length >= 2,
    `progress before drained:\n${run.stdout}`,
  );
});
