// The `tollgate` CLI as a client of a running `tollgate serve`: submit --watch
// drawing its progress bar in a real terminal (tmux), watch --json, and the
// exit codes of a failed call and of bad usage.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { useServeProcess } from "../support/fixture.js";
import { pollUntil } from "../support/expect.js";

const BIN = fileURLToPath(new URL("../../bin/tollgate.js", import.meta.url));
const hasTmux = spawnSync("tmux", ["-V"]).status === 0;

const served = useServeProcess("cli", { TOLLGATE_RATE_LIMITS: "8/1s" });

test("tollgate submit --count 25 --watch draws a progress bar in a real terminal and exits 0", async (t) => {
  if (!hasTmux) return t.skip("tmux is not installed (apt-get install -y tmux); .ci/run installs it");
  const session = `tollgate-test-${process.pid}`;
  const command = `${process.execPath} ${BIN} submit --addr 127.0.0.1:${served.server.port} --user 123 --count 25 --watch; echo EXIT=$?; sleep 30`;
  execFileSync("tmux", ["new-session", "-d", "-s", session, "-x", "160", "-y", "12", command]);
  try {
    const doneCounts: number[] = [];
    let screen = "";
    await pollUntil(
      "the CLI to exit",
      () => {
        screen = execFileSync("tmux", ["capture-pane", "-p", "-t", session], { encoding: "utf8" });
        for (const match of screen.matchAll(/(\d+)\/25 done/g)) doneCounts.push(Number(match[1]));
        return screen.includes("EXIT=");
      },
      { timeoutMs: 20_000 },
    );
    assert.match(screen, /EXIT=0/);
    assert.match(screen, /123 \[#+\] 25\/25 done \| 0 queued \| 0 running \| 0 failed/);
    // The bar redraws in place (one line), and the count only rises.
    assert.equal(screen.match(/done \|/g)?.length, 1, `the bar is redrawn in place:\n${screen}`);
    assert.ok(doneCounts.length >= 2 && doneCounts[0]! < 25, `saw the count rise: ${doneCounts.join(",")}`);
    for (let i = 1; i < doneCounts.length; i++)
      assert.ok(doneCounts[i]! >= doneCounts[i - 1]!, "the count never falls");
  } finally {
    spawnSync("tmux", ["kill-session", "-t", session]);
  }
});

test("tollgate watch --json prints one JSON object per message and ends with drained", async () => {
  const submit = spawnSync(
    process.execPath,
    [BIN, "submit", "--addr", `127.0.0.1:${served.server.port}`, "--user", "json", "--count", "10"],
    {
      encoding: "utf8",
    },
  );
  assert.equal(submit.status, 0, submit.stderr);
  assert.equal(submit.stdout.trim().split("\n").length, 10);
  const watch = spawnSync(
    process.execPath,
    [BIN, "watch", "--addr", `127.0.0.1:${served.server.port}`, "--user", "json", "--json"],
    {
      encoding: "utf8",
      timeout: 15_000,
    },
  );
  assert.equal(watch.status, 0, watch.stderr);
  const messages = watch.stdout
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as { drained?: boolean; userId: string });
  assert.ok(messages.length >= 1);
  assert.equal(messages.at(-1)!.drained, true);
  assert.ok(messages.every((m) => m.userId === "json"));
});

test("a failed call prints one line with its gRPC code and exits 1; bad usage exits 2", () => {
  const bad = spawnSync(
    process.execPath,
    [BIN, "submit", "--addr", `127.0.0.1:${served.server.port}`, "--user", "a\u0001b"],
    {
      encoding: "utf8",
    },
  );
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^tollgate submit: INVALID_ARGUMENT: user_id: contains the control character U\+0001/);
  assert.equal(bad.stderr.trim().split("\n").length, 1);
  const usage = spawnSync(process.execPath, [BIN, "submit", "--frobnicate"], { encoding: "utf8" });
  assert.equal(usage.status, 2);
  const notFound = spawnSync(
    process.execPath,
    [BIN, "task", "0.AAAAAAAAAAAAAAAAAAAAAA", "--addr", `127.0.0.1:${served.server.port}`],
    {
      encoding: "utf8",
    },
  );
  assert.equal(notFound.status, 1);
  assert.match(notFound.stderr, /NOT_FOUND/);
});
