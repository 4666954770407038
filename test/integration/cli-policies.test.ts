// The CLI's plan and policy commands (and submit --cost) against a server:
// tables by default, --json for scripts, PERMISSION_DENIED for a user's key.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { usePrivateRedis } from "../support/fixture.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { ADMIN_KEY, ALICE_KEY, writeKeyFile } from "../support/api-keys.js";
import { describeRun, runCommand, type Finished } from "../support/command.js";

const ctx = usePrivateRedis("cli-policies");
const BIN = new URL("../../bin/tollgate.js", import.meta.url).pathname;

describe("tollgate plan and tollgate policy", () => {
  let server: TestServer;
  const tollgate = async (args: readonly string[], key = ADMIN_KEY): Promise<Finished> =>
    runCommand(process.execPath, [BIN, ...args, "--addr", server.address.replace("http://", ""), "--api-key", key], {
      timeoutMs: 60_000,
    });
  const ok = async (args: readonly string[]): Promise<string> => {
    const run = await tollgate(args);
    assert.equal(run.code, 0, `tollgate ${args.join(" ")}: ${describeRun(run)}`);
    return run.stdout;
  };
  const dispositions = (stdout: string): string[] =>
    stdout
      .trim()
      .split("\n")
      .map((line) => String((JSON.parse(line) as { disposition?: string }).disposition));

  before(async () => {
    await writeKeyFile(ctx.dir);
    server = await startTestServer(ctx.redis.url, {
      TOLLGATE_AUTH_KEYS: join(ctx.dir, "keys"),
      TOLLGATE_RATE_LIMITS: "1/1s,20/1m",
    });
  });
  after(async () => {
    await server?.close();
  });

  test("policy set --user vip --limits 5/1s,100/1m: 10 quick Submits for vip, 5 STARTED; for plain, 1", async () => {
    assert.match(await ok(["policy", "set", "--user", "vip", "--limits", "5/1s,100/1m"]), /vip: limits 5\/1s,100\/1m/);
    const vip = dispositions(await ok(["submit", "--user", "vip", "--count", "10", "--json"]));
    assert.equal(vip.filter((d) => d === "DISPOSITION_STARTED").length, 5, vip.join(" "));
    assert.equal(vip.filter((d) => d === "DISPOSITION_QUEUED").length, 5);
    // Purged: under 5/1s its queue drains in a burst a second later, and a process with due
    // tasks waiting starts no Submit at once (TaskRunner.reserve).
    await ok(["purge", "--user", "vip"]);
    const plain = dispositions(await ok(["submit", "--user", "plain", "--count", "10", "--json"]));
    assert.equal(plain.filter((d) => d === "DISPOSITION_STARTED").length, 1, plain.join(" "));
    await ok(["purge", "--user", "plain"]);

    const table = await ok(["policy", "get", "--user", "vip"]);
    assert.match(table, /^USER\s+POLICY\s+SOURCE\s+FROM$/m);
    assert.match(table, /^vip\s+5\/1s,100\/1m\s+override\s+its own override$/m);
    const json = JSON.parse(await ok(["policy", "get", "--user", "plain", "--json"])) as Record<string, unknown>;
    assert.equal(json.source, "POLICY_SOURCE_DEFAULT");
    assert.deepEqual(json.effective, { limits: "1/1s,20/1m" });
  });

  test("plan set, plan list, policy set --plan, policy delete", async () => {
    await ok(["plan", "set", "gold", "--limits", "10/1s,1000/1m", "--max-running", "3"]);
    const list = await ok(["plan", "list"]);
    assert.match(list, /^PLAN\s+LIMITS\s+MAX RUNNING\s+FROM$/m);
    assert.match(list, /^default\s+1\/1s,20\/1m\s+-\s+TOLLGATE_RATE_LIMITS$/m);
    assert.match(list, /^gold\s+10\/1s,1000\/1m\s+3\s+stored$/m);
    const plans = (await ok(["plan", "list", "--json"]))
      .trim()
      .split("\n")
      .map((line) => (JSON.parse(line) as { name: string }).name);
    assert.deepEqual(plans, ["default", "gold"]);

    await ok(["policy", "set", "--user", "goldie", "--plan", "gold"]);
    assert.match(
      await ok(["policy", "get", "--user", "goldie"]),
      /^goldie\s+10\/1s,1000\/1m, max running 3\s+plan\s+plan gold$/m,
    );
    assert.match(await ok(["policy", "delete", "--user", "goldie"]), /goldie: back to the default plan/);
    assert.match(await ok(["policy", "get", "--user", "goldie"]), /^goldie\s+1\/1s,20\/1m\s+default\s+plan default$/m);
  });

  test("submit --cost 3 under 5/1s uses 3 units; --cost 6 is refused naming the window", async () => {
    await ok(["policy", "set", "--user", "heavy", "--limits", "5/1s"]);
    const first = JSON.parse(await ok(["submit", "--user", "heavy", "--cost", "3", "--json"])) as {
      disposition: string;
      windows: { remaining?: number }[];
    };
    assert.equal(first.disposition, "DISPOSITION_STARTED");
    assert.equal(first.windows[0]?.remaining, 2);
    const tooHigh = await tollgate(["submit", "--user", "heavy", "--cost", "6"]);
    assert.equal(tooHigh.code, 1, describeRun(tooHigh));
    assert.match(tooHigh.stderr, /INVALID_ARGUMENT: cost: 6 is above the limit of the user's window 5\/1s/);
  });

  test("policy set --dry-run prints both forecasts and changes nothing", async () => {
    await ok(["submit", "--user", "backlog", "--count", "6"]);
    const out = await ok(["policy", "set", "--user", "backlog", "--limits", "10/1s", "--dry-run"]);
    assert.match(out, /^dry run, nothing changed: backlog has \d+ queued$/m);
    assert.match(out, /^now\s+1\/1s,20\/1m\s+\d{4}-/m);
    assert.match(out, /^proposed\s+10\/1s\s+\d{4}-/m);
    assert.match(await ok(["policy", "get", "--user", "backlog"]), /\sdefault\s/);
  });

  test("a user's key: PERMISSION_DENIED, exit 1; a malformed --limits: INVALID_ARGUMENT naming the field", async () => {
    const denied = await tollgate(["policy", "set", "--user", "alice", "--limits", "100/1s"], ALICE_KEY);
    assert.equal(denied.code, 1, describeRun(denied));
    assert.match(denied.stderr, /PERMISSION_DENIED: .*admin keys only/);
    const bad = await tollgate(["plan", "set", "bad", "--limits", "lots"]);
    assert.equal(bad.code, 1, describeRun(bad));
    assert.match(bad.stderr, /INVALID_ARGUMENT: policy\.limits: "lots" is not a window/);
    const usage = await tollgate(["policy", "set", "--user", "x"]);
    assert.equal(usage.code, 2, describeRun(usage));
    assert.match(usage.stderr, /give --plan NAME or --limits WINDOWS/);
  });
});
