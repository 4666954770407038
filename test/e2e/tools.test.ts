// The tools people call Tollgate with, each used for real against
// `tollgate serve` (a 2-worker cluster on a private Redis): buf curl through
// server reflection, the `tollgate` CLI as a client, and grpc-health-probe
// (skipped, saying so, only when it is not installed).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { describe, test } from "node:test";
import { HealthCheckResponse_ServingStatus, createHealthClient, createTollgateClient } from "../../src/index.js";
import { freePort } from "../../src/redis/embedded-redis.js";
import { describeRun, runCommand, type Finished } from "../support/command.js";
import { useServeProcess } from "../support/fixture.js";
import { inARow, pollUntil } from "../support/expect.js";

const BUF = resolve("node_modules/.bin/buf");
const BIN = resolve("bin/tollgate.js");
const PROBE = "grpc-health-probe";
const hasProbe = spawnSync(PROBE, ["-version"]).status === 0;
const NO_PROBE =
  "grpc-health-probe is not installed (go install github.com/grpc-ecosystem/grpc-health-probe@v0.4.62; .ci/run does)";

const served = useServeProcess("tools", { TOLLGATE_RATE_LIMITS: "1/1s,20/1m" });

/** Every top-level JSON object in `text`, in order (buf curl prints one per streamed message). */
function jsonObjects(text: string): Record<string, unknown>[] {
  const objects: Record<string, unknown>[] = [];
  let depth = 0;
  let start = 0;
  let inString = false;
  let escaped = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === "\\") escaped = true;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "{" && depth++ === 0) start = i;
    else if (c === "}" && --depth === 0) objects.push(JSON.parse(text.slice(start, i + 1)) as Record<string, unknown>);
  }
  return objects;
}

async function bufCurl(method: string, body?: unknown): Promise<Record<string, unknown>[]> {
  const data = body === undefined ? [] : ["-d", JSON.stringify(body)];
  const run = await runCommand(
    BUF,
    ["curl", "--protocol", "grpc", "--http2-prior-knowledge", ...data, `http://${served.addr}/${method}`],
    {
      timeoutMs: 30_000,
    },
  );
  assert.equal(run.code, 0, `buf curl ${method}: ${describeRun(run)}`);
  return jsonObjects(run.stdout);
}

/** Every command `tollgate --help` lists. */
const COMMANDS = [
  "serve",
  "submit",
  "watch",
  "task",
  "tasks",
  "cancel",
  "purge",
  "pause",
  "resume",
  "queues",
  "dead",
  "plan",
  "policy",
  "health",
  "worker",
] as const;

describe("buf curl through server reflection, against tollgate serve", () => {
  test("Submit, then GetTask of the task it answered", async () => {
    const [submitted] = await bufCurl("tollgate.v1.TaskService/Submit", { user_id: "buf-1", payload: "aGVsbG8=" });
    assert.equal(submitted?.disposition, "DISPOSITION_STARTED", JSON.stringify(submitted));
    assert.match(String(submitted?.taskId), /^\d+\.[\w-]{22}$/);
    assert.equal((submitted?.windows as unknown[] | undefined)?.length, 2);
    const [answer] = await bufCurl("tollgate.v1.TaskService/GetTask", { task_id: submitted?.taskId });
    const task = answer?.task as Record<string, unknown>;
    assert.equal(task.taskId, submitted?.taskId);
    assert.equal(task.userId, "buf-1");
    assert.match(String(task.state), /^TASK_STATE_(RUNNING|SUCCEEDED)$/);
  });

  test("WatchQueue streams several JSON messages; only the last says drained", async () => {
    // 1/1s: one starts now and four wait, so the queue takes about 4 s to drain.
    const client = createTollgateClient({ baseUrl: `http://${served.addr}` });
    for (let i = 0; i < 5; i++) await client.submit({ userId: "buf-watch" });
    const messages = await bufCurl("tollgate.v1.TaskService/WatchQueue", { user_id: "buf-watch" });
    assert.ok(messages.length >= 2, `several messages, got ${JSON.stringify(messages)}`);
    const last = messages.at(-1)!;
    assert.equal(last.drained, true, JSON.stringify(last));
    assert.equal(last.userId, "buf-watch");
    assert.equal(last.queued, undefined, "nothing queued (proto3 JSON leaves zeros out)");
    for (const message of messages.slice(0, -1)) assert.notEqual(message.drained, true, JSON.stringify(message));
    assert.ok(Number(messages[0]!.queued) >= 1, `the first message shows a queue: ${JSON.stringify(messages[0])}`);
  });

  test("grpc.health.v1.Health/Check answers SERVING for the server and for TaskService", async () => {
    assert.deepEqual(await bufCurl("grpc.health.v1.Health/Check"), [{ status: "SERVING" }]);
    assert.deepEqual(await bufCurl("grpc.health.v1.Health/Check", { service: "tollgate.v1.TaskService" }), [
      { status: "SERVING" },
    ]);
  });
});

/** `tollgate ARGS` as a user runs it. */
function tollgate(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Finished> {
  return runCommand(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, timeoutMs: 30_000 });
}

function oneLine(text: string): string {
  const lines = text.trim().split("\n");
  assert.equal(lines.length, 1, `one line, got:\n${text}`);
  return lines[0]!;
}

describe("the tollgate CLI as a client", () => {
  test("tollgate --help lists every command and the exit codes; no command is a usage error (2)", async () => {
    const [help, none, unknown] = await Promise.all([tollgate(["--help"]), tollgate([]), tollgate(["frobnicate"])]);
    assert.equal(help.code, 0, describeRun(help));
    for (const command of COMMANDS) assert.match(help.stdout, new RegExp(`^  ${command} `, "m"));
    assert.match(help.stdout, /Exit codes: 0 ok, 1 the call failed .*\n2 usage/);
    assert.equal(none.code, 2, describeRun(none));
    assert.equal(unknown.code, 2, describeRun(unknown));
    assert.match(unknown.stderr, /unknown command "frobnicate"/);
  });

  test("each command's --help exits 0 and shows its flags; client commands take --addr, --api-key, --json and the TLS flags", async () => {
    const helps = await Promise.all(COMMANDS.map((command) => tollgate([command, "--help"])));
    for (const [i, help] of helps.entries()) {
      assert.equal(help.code, 0, `${COMMANDS[i]} --help: ${describeRun(help)}`);
      assert.match(help.stdout, new RegExp(`^Usage: tollgate ${COMMANDS[i]}`));
      const flags =
        COMMANDS[i] === "serve"
          ? ["--tls-cert", "--tls-key", "--tls-ca", "--auth-keys"]
          : ["--addr", "--api-key", "--json", "--tls", "--tls-ca", "--tls-cert", "--tls-key"];
      for (const flag of flags)
        assert.match(help.stdout, new RegExp(`${flag}\\b`), `${COMMANDS[i]} --help names ${flag}`);
      if (COMMANDS[i] === "submit") {
        for (const flag of ["--delay", "--at", "--start-by", "--priority"])
          assert.match(help.stdout, new RegExp(`${flag}\\b`), `submit --help names ${flag}`);
      }
    }
  });

  test("usage errors exit 2 with one line that says what is wrong", async () => {
    const cases: [string[], RegExp][] = [
      [["submit", "--addr", served.addr], /tollgate submit: --user is required \(see tollgate submit --help\)/],
      [["submit", "--user", "u", "--bogus"], /tollgate submit: .*--bogus/],
      [["submit", "--user", "u", "--delay", "soon"], /tollgate submit: --delay must be a duration such as 500ms/],
      [["submit", "--user", "u", "--delay", "1s", "--at", "2026-12-03T10:00:00Z"], /tollgate submit: --delay and --at/],
      [["submit", "--user", "u", "--at", "tomorrow"], /tollgate submit: --at must be an ISO time/],
      [["submit", "--user", "u", "--priority", "high"], /tollgate submit: --priority must be a whole number/],
      [["submit", "--user", "u", "--start-by", "2026-12-03"], /tollgate submit: --start-by must be an ISO time/],
      [["task", "--addr", served.addr], /tollgate task: give exactly one task id/],
      [["tasks", "--addr", served.addr], /tollgate tasks: --user is required/],
      [["tasks", "--user", "u", "--state", "done"], /tollgate tasks: --state must be queued, running or dead/],
      [["cancel", "--addr", served.addr], /tollgate cancel: give exactly one task id/],
      [["purge", "--addr", served.addr], /tollgate purge: --user is required/],
      [["pause", "--addr", served.addr], /tollgate pause: --user is required/],
      [["resume", "--addr", served.addr], /tollgate resume: --user is required/],
      [["queues", "--page-size", "0"], /tollgate queues: --page-size must be a whole number from 1/],
      [["dead", "--user", "u", "--all"], /tollgate dead: give one action: requeue or purge/],
      [["dead", "requeue", "--all"], /tollgate dead: --user is required/],
      [["dead", "purge", "--user", "u"], /tollgate dead: give --task ID \(repeatable\) or --all/],
      [["dead", "purge", "--user", "u", "--all", "--task", "x"], /tollgate dead: give --task or --all, not both/],
      [["dead", "--user", "u", "--requeue", "--purge"], /tollgate dead: give one action, not several/],
      [["dead", "purge", "--user", "u", "--requeue"], /tollgate dead: give one action, not several/],
      [["health", "--addr"], /tollgate health: .*--addr/],
    ];
    const runs = await Promise.all(cases.map(([args]) => tollgate(args)));
    for (const [i, run] of runs.entries()) {
      assert.equal(run.code, 2, `${cases[i]![0].join(" ")}: ${describeRun(run)}`);
      assert.match(oneLine(run.stderr), cases[i]![1]);
    }
  });

  test("--json: submit, task, watch and health print JSON for scripts, and exit 0", async () => {
    const submit = await tollgate([
      "submit",
      "--addr",
      served.addr,
      "--user",
      "cli-json",
      "--count",
      "2",
      "--payload",
      "hi",
      "--json",
    ]);
    assert.equal(submit.code, 0, describeRun(submit));
    const answers = submit.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    // Both calls are in flight at once, so either may be the one that started.
    assert.deepEqual(answers.map((a) => a.disposition).sort(), ["DISPOSITION_QUEUED", "DISPOSITION_STARTED"]);
    const started = answers.find((a) => a.disposition === "DISPOSITION_STARTED")!;

    const [task, watch, health] = await Promise.all([
      tollgate(["task", String(started.taskId), "--addr", served.addr, "--json"]),
      tollgate(["watch", "--addr", served.addr, "--user", "cli-json", "--json"]),
      // The address from TOLLGATE_ADDR, and an API key (sent, unused: auth is off).
      tollgate(["health", "--json", "--api-key", "some-key"], { TOLLGATE_ADDR: served.addr }),
    ]);
    assert.equal(task.code, 0, describeRun(task));
    const shown = (JSON.parse(oneLine(task.stdout)) as { task: Record<string, unknown> }).task;
    assert.equal(shown.taskId, started.taskId);
    assert.equal(shown.userId, "cli-json");
    assert.equal(watch.code, 0, describeRun(watch));
    const messages = watch.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.equal(messages.at(-1)!.drained, true);
    assert.equal(health.code, 0, describeRun(health));
    assert.deepEqual(JSON.parse(oneLine(health.stdout)), { status: "SERVING" });
  });

  test("tasks lists a user's queue, one task per line with its position, a page or --all", async () => {
    // Under 1/1s, 1 of 12 starts and the rest drain one a second: the listing
    // sees a queue whose head leaves now and then.
    const submit = await tollgate(["submit", "--addr", served.addr, "--user", "cli-tasks", "--count", "12"]);
    assert.equal(submit.code, 0, describeRun(submit));
    const [first, all, dead] = await Promise.all([
      tollgate(["tasks", "--addr", served.addr, "--user", "cli-tasks", "--page-size", "2"]),
      tollgate(["tasks", "--addr", served.addr, "--user", "cli-tasks", "--page-size", "2", "--all"]),
      tollgate(["tasks", "--addr", served.addr, "--user", "cli-tasks", "--state", "dead"]),
    ]);
    for (const run of [first, all, dead]) assert.equal(run.code, 0, describeRun(run));
    const line = /^\d+\.[A-Za-z0-9_-]{22} QUEUED position (\d+) submitted \d{4}-\d\d-\d\dT[\d:.]+Z$/;
    const firstLines = first.stdout.trim().split("\n");
    assert.equal(firstLines.length, 3, first.stdout);
    assert.match(firstLines[0]!, line);
    assert.match(firstLines[2]!, /^next page: [A-Za-z0-9_-]+$/);
    const lines = all.stdout.trim().split("\n");
    assert.ok(lines.length >= 5, all.stdout);
    for (const text of lines) assert.match(text, line);
    assert.equal(Number(line.exec(lines[0]!)![1]), 1, all.stdout);
    // No task twice over the pages, though heads leave meanwhile.
    const ids = lines.map((text) => text.split(" ")[0]);
    assert.equal(new Set(ids).size, ids.length, all.stdout);
    assert.equal(dead.stdout, "");
  });

  test("submit --delay and --start-by: the task waits, its estimated start at its moment; cancel reaches it", async () => {
    const before = Date.now();
    const submit = await tollgate([
      "submit",
      "--addr",
      served.addr,
      "--user",
      "cli-delay",
      "--delay",
      "1h",
      "--start-by",
      "2h",
      "--json",
    ]);
    assert.equal(submit.code, 0, describeRun(submit));
    const answer = JSON.parse(oneLine(submit.stdout)) as {
      taskId: string;
      disposition: string;
      estimatedStart: string;
    };
    assert.equal(answer.disposition, "DISPOSITION_QUEUED");
    assert.ok(Date.parse(answer.estimatedStart) >= before + 3_600_000, answer.estimatedStart);
    const cancel = await tollgate(["cancel", "--addr", served.addr, answer.taskId]);
    assert.equal(cancel.code, 0, describeRun(cancel));
    assert.match(cancel.stdout, /CANCELLED/);
  });

  test("submit --priority: the task goes ahead of the user's lower-priority queued tasks; above 9 is the server's INVALID_ARGUMENT", async () => {
    const pause = await tollgate(["pause", "--addr", served.addr, "--user", "cli-priority"]);
    assert.equal(pause.code, 0, describeRun(pause));
    const low = await tollgate(["submit", "--addr", served.addr, "--user", "cli-priority", "--count", "2", "--json"]);
    assert.equal(low.code, 0, describeRun(low));
    const high = await tollgate([
      "submit",
      "--addr",
      served.addr,
      "--user",
      "cli-priority",
      "--priority",
      "7",
      "--json",
    ]);
    assert.equal(high.code, 0, describeRun(high));
    const answer = JSON.parse(oneLine(high.stdout)) as { taskId: string; queuePosition: number };
    assert.equal(answer.queuePosition, 1, high.stdout);
    const tooHigh = await tollgate(["submit", "--addr", served.addr, "--user", "cli-priority", "--priority", "10"]);
    assert.equal(tooHigh.code, 1, describeRun(tooHigh));
    assert.match(tooHigh.stderr, /INVALID_ARGUMENT: .*priority/);
    const purge = await tollgate(["purge", "--addr", served.addr, "--user", "cli-priority"]);
    assert.equal(purge.code, 0, describeRun(purge));
  });

  test("pause pauses a queue and says how many wait; resume resumes it; both idempotent", async () => {
    // Under 1/1s, 1 of 3 starts and the others wait a second each.
    const submit = await tollgate(["submit", "--addr", served.addr, "--user", "cli-pause", "--count", "3", "--json"]);
    assert.equal(submit.code, 0, describeRun(submit));
    const pause = await tollgate(["pause", "--addr", served.addr, "--user", "cli-pause"]);
    assert.equal(pause.code, 0, describeRun(pause));
    const queued = Number(/^paused cli-pause \(([12]) queued\)$/.exec(oneLine(pause.stdout))?.[1]);
    assert.ok(queued > 0, pause.stdout);
    const again = await tollgate(["pause", "--addr", served.addr, "--user", "cli-pause", "--json"]);
    assert.equal(again.code, 0, describeRun(again));
    assert.deepEqual(JSON.parse(oneLine(again.stdout)), { userId: "cli-pause", paused: true, queued });
    const resume = await tollgate(["resume", "--addr", served.addr, "--user", "cli-pause"]);
    assert.equal(resume.code, 0, describeRun(resume));
    assert.equal(oneLine(resume.stdout), `resumed cli-pause (${queued} queued)`);
    const twice = await tollgate(["resume", "--addr", served.addr, "--user", "cli-pause", "--json"]);
    assert.equal(twice.code, 0, describeRun(twice));
    assert.equal((JSON.parse(oneLine(twice.stdout)) as { paused: boolean }).paused, false);
  });

  test("queues lists every user's queue: a table, or JSON lines with --json", async () => {
    // Under 1/1s, 1 of 4 starts; paused at once, the others stay queued.
    const submit = await tollgate(["submit", "--addr", served.addr, "--user", "cli-queues", "--count", "4", "--json"]);
    assert.equal(submit.code, 0, describeRun(submit));
    const pause = await tollgate(["pause", "--addr", served.addr, "--user", "cli-queues", "--json"]);
    assert.equal(pause.code, 0, describeRun(pause));
    const { queued } = JSON.parse(oneLine(pause.stdout)) as { queued: number };
    assert.ok(queued > 0, pause.stdout);
    try {
      const json = await tollgate(["queues", "--addr", served.addr, "--all", "--json"]);
      assert.equal(json.code, 0, describeRun(json));
      const lines = json.stdout
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      // The task that started runs for a moment only: running may still say 1.
      const { running, ...ours } = lines.find((line) => line.userId === "cli-queues") ?? {};
      assert.ok(running === 0 || running === 1, `running ${String(running)}`);
      assert.deepEqual(ours, { userId: "cli-queues", queued, waitingToRetry: 0, dead: 0, paused: true });
      const table = await tollgate(["queues", "--addr", served.addr, "--all"]);
      assert.equal(table.code, 0, describeRun(table));
      assert.match(table.stdout, /^USER +QUEUED +RUNNING +RETRYING +DEAD +PAUSED\n/);
      assert.match(table.stdout, new RegExp(`^cli-queues +${queued} +[01] +0 +0 +yes$`, "m"));
    } finally {
      await tollgate(["resume", "--addr", served.addr, "--user", "cli-queues"]);
    }
  });

  test("cancel cancels a queued task and prints it; purge cancels the rest of the queue and says how many", async () => {
    // Under 1/1s, 1 of 6 starts and the rest wait a second each: the last is queued for seconds.
    const submit = await tollgate(["submit", "--addr", served.addr, "--user", "cli-cancel", "--count", "6", "--json"]);
    assert.equal(submit.code, 0, describeRun(submit));
    const last = (JSON.parse(submit.stdout.trim().split("\n").at(-1)!) as { taskId: string }).taskId;
    const cancel = await tollgate(["cancel", last, "--addr", served.addr]);
    assert.equal(cancel.code, 0, describeRun(cancel));
    assert.match(cancel.stdout, new RegExp(`^taskId: ${last.replace(".", "\\.")}$`, "m"));
    assert.match(cancel.stdout, /^state: TASK_STATE_CANCELLED$/m);
    const again = await tollgate(["cancel", last, "--addr", served.addr, "--json"]);
    assert.equal(again.code, 0, describeRun(again));
    assert.equal((JSON.parse(oneLine(again.stdout)) as { task: { state: string } }).task.state, "TASK_STATE_CANCELLED");
    const purge = await tollgate(["purge", "--addr", served.addr, "--user", "cli-cancel"]);
    assert.equal(purge.code, 0, describeRun(purge));
    assert.match(oneLine(purge.stdout), /^cancelled [1-4] task\(s\) of cli-cancel$/);
    const twice = await tollgate(["purge", "--addr", served.addr, "--user", "cli-cancel", "--json"]);
    assert.deepEqual(JSON.parse(oneLine(twice.stdout)), { userId: "cli-cancel", cancelled: 0 });
    const unknown = await tollgate(["cancel", "0.AAAAAAAAAAAAAAAAAAAAAA", "--addr", served.addr]);
    assert.equal(unknown.code, 1, describeRun(unknown));
    assert.match(oneLine(unknown.stderr), /^tollgate cancel: NOT_FOUND: /);
  });

  test("dead requeues or purges a user's dead letters, saying how many and which ids were not on the list", async () => {
    const unknown = "0.AAAAAAAAAAAAAAAAAAAAAA";
    const [requeue, purge, json, malformed, flagged] = await Promise.all([
      tollgate(["dead", "requeue", "--addr", served.addr, "--user", "cli-dead", "--all"]),
      tollgate(["dead", "purge", "--addr", served.addr, "--user", "cli-dead", "--task", unknown, "--task", unknown]),
      tollgate(["dead", "purge", "--addr", served.addr, "--user", "cli-dead", "--task", unknown, "--json"]),
      tollgate(["dead", "purge", "--addr", served.addr, "--user", "cli-dead", "--task", "nope"]),
      // The form: the action as a flag, no --task (every dead letter).
      tollgate(["dead", "--addr", served.addr, "--user", "cli-dead", "--requeue"]),
    ]);
    for (const run of [requeue, purge, json, flagged]) assert.equal(run.code, 0, describeRun(run));
    assert.equal(requeue.stdout, "requeued 0\n");
    assert.equal(flagged.stdout, "requeued 0\n");
    assert.equal(purge.stdout, `purged 0\nnot found: ${unknown}\n`);
    assert.deepEqual(JSON.parse(json.stdout), { purged: 0, notFound: [unknown] });
    assert.equal(malformed.code, 1, describeRun(malformed));
    assert.match(
      oneLine(malformed.stderr),
      /tollgate dead: INVALID_ARGUMENT: task_ids\[0\]: is not a Tollgate task id/,
    );
  });

  test("a failed call exits 1 with one line naming the gRPC code", async () => {
    const closed = await freePort();
    const [invalid, missing, rejected, unreachable, tls] = await Promise.all([
      tollgate(["task", "not-a-task-id", "--addr", served.addr]),
      tollgate(["task", "0.AAAAAAAAAAAAAAAAAAAAAA", "--addr", served.addr, "--json"]),
      // Two at once for a fresh user under 1/1s: one starts, REJECT refuses the other.
      tollgate(["submit", "--addr", served.addr, "--user", "cli-reject", "--count", "2", "--reject"]),
      tollgate(["health", "--addr", `127.0.0.1:${closed}`]),
      // --tls against a plaintext server: the flag is taken, and the handshake fails.
      tollgate(["health", "--addr", served.addr, "--tls"]),
    ]);
    for (const run of [invalid, missing, rejected, unreachable, tls]) assert.equal(run.code, 1, describeRun(run));
    assert.match(oneLine(invalid.stderr), /^tollgate task: INVALID_ARGUMENT: task_id/);
    assert.match(oneLine(missing.stderr), /^tollgate task: NOT_FOUND: /);
    assert.match(oneLine(rejected.stderr), /^tollgate submit: RESOURCE_EXHAUSTED: .*\(retry after \d+ ms\)$/);
    assert.match(oneLine(unreachable.stderr), /^tollgate health: UNAVAILABLE: /);
    assert.match(oneLine(tls.stderr), /^tollgate health: [A-Z_]+: /);
  });
});

describe("grpc-health-probe against tollgate serve", () => {
  const probe = (...args: string[]) =>
    runCommand(PROBE, ["-connect-timeout=2s", "-rpc-timeout=2s", ...args], { timeoutMs: 10_000 });

  test("exits 0 while serving (server and TaskService), 3 for an unknown service, 2 when nothing listens", async (t) => {
    if (!hasProbe) return t.skip(NO_PROBE);
    const closed = await freePort();
    const [server, service, unknown, nothing] = await Promise.all([
      probe(`-addr=${served.addr}`),
      probe(`-addr=${served.addr}`, "-service=tollgate.v1.TaskService"),
      probe(`-addr=${served.addr}`, "-service=no.such.Service"),
      probe(`-addr=127.0.0.1:${closed}`),
    ]);
    assert.equal(server.code, 0, describeRun(server));
    assert.match(server.stdout + server.stderr, /status: SERVING/);
    assert.equal(service.code, 0, describeRun(service));
    assert.equal(unknown.code, 3, describeRun(unknown));
    assert.equal(nothing.code, 2, describeRun(nothing));
  });

  test("when Redis stops: tollgate health exits 1 (NOT_SERVING) and the probe exits 4; both pass again when it is back", async (t) => {
    /** Health as a fresh connection sees it: each connection lands on one worker. */
    const check = async (): Promise<number> => {
      const health = createHealthClient({ baseUrl: `http://${served.addr}` });
      return (await health.check({ service: "" }, { timeoutMs: 2_000 }).catch(() => ({ status: -1 }))).status;
    };
    const until = async (status: HealthCheckResponse_ServingStatus, what: string): Promise<void> => {
      await pollUntil(
        what,
        inARow(4, async () => (await check()) === status),
        {
          timeoutMs: 15_000,
        },
      );
    };
    await served.redis.stop();
    try {
      await until(HealthCheckResponse_ServingStatus.NOT_SERVING, "every worker to say NOT_SERVING");
      const health = await tollgate(["health", "--addr", served.addr, "--service", "tollgate.v1.TaskService"]);
      assert.equal(health.code, 1, describeRun(health));
      assert.equal(oneLine(health.stdout), "NOT_SERVING");
      for (let i = 0; hasProbe && i < 4; i++) {
        const down = await probe(`-addr=${served.addr}`);
        assert.equal(down.code, 4, describeRun(down));
      }
    } finally {
      await served.redis.start();
    }
    await until(HealthCheckResponse_ServingStatus.SERVING, "every worker to say SERVING again");
    const health = await tollgate(["health", "--addr", served.addr]);
    assert.equal(health.code, 0, describeRun(health));
    if (!hasProbe) return t.skip(`the tollgate health half ran; ${NO_PROBE}`);
    const up = await probe(`-addr=${served.addr}`);
    assert.equal(up.code, 0, describeRun(up));
  });
});
