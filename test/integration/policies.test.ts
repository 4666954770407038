// Policies as data (issue 14): plans and per-user overrides stored in Redis
// bind the user's next start on every host, without a restart; weighted
// cost; a cap on running tasks across hosts; PolicyService for admin keys
// only, with malformed policies refused naming the field; and a dry run.
// Two servers share one Redis, both started before any change.
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { createPolicyClient, createTollgateClient } from "../../src/client/client.js";
import { usePrivateRedis } from "../support/fixture.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { ADMIN_KEY, ALICE_KEY, writeKeyFile } from "../support/api-keys.js";
import { pollUntil } from "../support/expect.js";
import { readFixtureLog } from "../support/task-log.js";
import {
  Disposition,
  TaskState,
  type TaskService,
  type WatchQueueResponse,
} from "../../gen/ts/tollgate/v1/task_service_pb.js";
import { PolicySource, type PolicyService } from "../../gen/ts/tollgate/v1/policy_service_pb.js";

const FIXTURE_HANDLERS = fileURLToPath(new URL("../fixtures/handlers.ts", import.meta.url));
const ctx = usePrivateRedis("policies");

/** The code of a failed call. */
async function codeOf(call: Promise<unknown>): Promise<{ code: Code; message: string }> {
  try {
    await call;
  } catch (error) {
    const connect = ConnectError.from(error);
    return { code: connect.code, message: connect.rawMessage };
  }
  assert.fail("the call succeeded");
}

/** When a task started (ms), once it has: polled with GetTask. */
async function startedAt(client: Client<typeof TaskService>, taskId: string): Promise<number> {
  return pollUntil(
    `task ${taskId} started`,
    async () => {
      const { task } = await client.getTask({ taskId });
      return task?.startedAt ? timestampMs(task.startedAt) : undefined;
    },
    { timeoutMs: 15_000 },
  );
}

describe("policies as data, on two servers sharing one Redis", () => {
  let a: TestServer;
  let b: TestServer;
  let log: string;
  const tasks = (server: TestServer, key = ADMIN_KEY): Client<typeof TaskService> =>
    createTollgateClient({ baseUrl: server.address, apiKey: key });
  const policies = (server: TestServer, key = ADMIN_KEY): Client<typeof PolicyService> =>
    createPolicyClient({ baseUrl: server.address, apiKey: key });
  const override = (limits: string, maxRunning = 0) => ({ case: "override", value: { limits, maxRunning } }) as const;

  before(async () => {
    await writeKeyFile(ctx.dir);
    log = join(ctx.dir, "starts.log");
    process.env.TOLLGATE_FIXTURE_LOG = log;
    const env = {
      TOLLGATE_AUTH_KEYS: join(ctx.dir, "keys"),
      TOLLGATE_RATE_LIMITS: "1/1s,20/1m",
      TOLLGATE_HANDLER: FIXTURE_HANDLERS,
      // Retries come due at once, so only the windows space them.
      TOLLGATE_RETRY_BACKOFF_MS: "20",
    };
    a = await startTestServer(ctx.redis.url, env);
    b = await startTestServer(ctx.redis.url, env);
  });
  after(async () => {
    await a?.close();
    await b?.close();
  });

  test("an override set on one server binds the next Submits on both: vip 5 STARTED of 10, plain 1", async () => {
    await policies(a).setUserPolicy({ userId: "vip", assignment: override("5/1s,100/1m") });
    for (const server of [a, b]) {
      const user = `vip-${server === a ? "a" : "b"}`;
      await policies(a).setUserPolicy({ userId: user, assignment: override("5/1s,100/1m") });
      const answers = [];
      for (let i = 0; i < 10; i++) answers.push(await tasks(server).submit({ userId: user }));
      assert.deepEqual(
        answers.map((answer) => answer.disposition),
        [...Array(5).fill(Disposition.STARTED), ...Array(5).fill(Disposition.QUEUED)],
        `${user} on server ${server === a ? "A" : "B"}`,
      );
      assert.equal(answers[0]!.windows[0]!.limit, 5, "Submit reports the user's own windows");
      assert.equal(answers[0]!.windows[1]!.limit, 100);
      // Its queue is purged: under 5/1s it would drain in a burst a second from now, and a
      // process with due tasks waiting starts no Submit at once (TaskRunner.reserve).
      await tasks(server).purgeQueue({ userId: user });
      const plain = [];
      for (let i = 0; i < 10; i++)
        plain.push(await tasks(server).submit({ userId: `plain-${server === a ? "a" : "b"}` }));
      assert.deepEqual(
        plain.map((answer) => answer.disposition),
        [Disposition.STARTED, ...Array(9).fill(Disposition.QUEUED)],
      );
      await tasks(server).purgeQueue({ userId: `plain-${server === a ? "a" : "b"}` });
    }
    const got = await policies(b).getUserPolicy({ userId: "vip" });
    assert.equal(got.source, PolicySource.OVERRIDE);
    assert.equal(got.effective?.limits, "5/1s,100/1m");
    const plainPolicy = await policies(b).getUserPolicy({ userId: "plain-a" });
    assert.equal(plainPolicy.source, PolicySource.DEFAULT);
    assert.equal(plainPolicy.effective?.limits, "1/1s,20/1m");
    // WatchQueue's snapshot reads the user's own policy with its windows.
    const snapshot = await b.store.snapshot("vip-b");
    assert.deepEqual(
      snapshot.policy?.windows.map((window) => window.limit),
      [5, 100],
    );
  });

  test("WatchQueue predicts from the user's own policy: 4 queued under 2/1m drain in 2 minutes, not 4 seconds", async () => {
    await policies(a).setUserPolicy({ userId: "watched", assignment: override("2/1m") });
    for (let i = 0; i < 6; i++) await tasks(b).submit({ userId: "watched" });
    let first: WatchQueueResponse | undefined;
    for await (const message of tasks(a).watchQueue({ userId: "watched" })) {
      first = message;
      break;
    }
    // 4 queued, or 5 or 6 while the first starts are under way (a process with due tasks
    // waiting queues a Submit rather than start it): either way two minutes' worth.
    assert.ok(first !== undefined && first.queued >= 4n, `queued ${first?.queued}`);
    const drainIn = timestampMs(first!.estimatedDrain!) - Date.now();
    assert.ok(drainIn > 100_000, `the last of 4 starts about 2 minutes from now, not ${drainIn} ms`);
  });

  test("a plan assigned to a user binds it; deleting the assignment brings the default back", async () => {
    await policies(a).setPlan({ name: "pro", policy: { limits: "3/1s" } });
    await policies(b).setUserPolicy({ userId: "pro-user", assignment: { case: "plan", value: "pro" } });
    const got = await policies(a).getUserPolicy({ userId: "pro-user" });
    assert.equal(got.source, PolicySource.PLAN);
    assert.equal(got.plan, "pro");
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push((await tasks(b).submit({ userId: "pro-user" })).taskId);
    const starts = [];
    for (const id of ids) starts.push(await startedAt(tasks(a), id));
    // 3 in the window the first start opened; the 4th once it reset (5 ms of clock granularity).
    assert.ok(starts[2]! - starts[0]! < 990, `the first 3 started together: ${starts.join(", ")}`);
    assert.ok(starts[3]! - starts[0]! >= 995, `the 4th waited for the window: ${starts.join(", ")}`);
    assert.equal((await policies(a).deleteUserPolicy({ userId: "pro-user" })).deleted, true);
    assert.equal((await policies(a).getUserPolicy({ userId: "pro-user" })).source, PolicySource.DEFAULT);
  });

  test("shrinking a limit keeps the open window's count: no extra start in it", async () => {
    await policies(a).setUserPolicy({ userId: "shrink", assignment: override("5/1m") });
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await tasks(a).submit({ userId: "shrink" })).taskId);
    for (const id of ids) await startedAt(tasks(a), id);
    await policies(a).setUserPolicy({ userId: "shrink", assignment: override("2/1m") });
    const next = await tasks(b).submit({ userId: "shrink" });
    assert.equal(next.disposition, Disposition.QUEUED, "3 starts in the open minute are over the new limit of 2");
    assert.equal(next.windows[0]!.remaining, 0);
  });

  test("cost 3 under 5/1s: the first starts, the next queues and starts once the window resets", async () => {
    await policies(a).setUserPolicy({ userId: "heavy", assignment: override("5/1s") });
    const first = await tasks(a).submit({ userId: "heavy", cost: 3 });
    if (first.disposition === Disposition.STARTED) assert.equal(first.windows[0]!.remaining, 2, "it used 3 units");
    const firstStart = await startedAt(tasks(a), first.taskId);
    const second = await tasks(b).submit({ userId: "heavy", cost: 3 });
    assert.equal(second.disposition, Disposition.QUEUED);
    assert.equal(second.windows[0]!.remaining, 2, "the first start used 3 units");
    assert.ok(
      timestampMs(second.estimatedStart!) - firstStart >= 990,
      "its estimate counts its 3 units: the window's reset, not now",
    );
    const task = await pollUntil(
      "the second heavy task succeeded",
      async () => {
        const found = (await tasks(a).getTask({ taskId: second.taskId })).task;
        return found?.state === TaskState.SUCCEEDED ? found : undefined;
      },
      { timeoutMs: 15_000 },
    );
    // The window opened at the first start and lasts 1 s; 5 ms of clock granularity.
    assert.ok(timestampMs(task.startedAt!) - firstStart >= 995, "the second started only after the window reset");
    const tooHigh = await codeOf(tasks(a).submit({ userId: "heavy", cost: 6 }));
    assert.equal(tooHigh.code, Code.InvalidArgument);
    assert.match(tooHigh.message, /^cost: .*5\/1s/);
  });

  test("retries use the cost again: a cost-3 task under 5/1s whose attempts fail starts each in a fresh window", async () => {
    await policies(a).setUserPolicy({ userId: "retrier", assignment: override("5/1s") });
    await tasks(b).submit({ userId: "retrier", kind: "flaky", cost: 3 });
    const attempts = await pollUntil(
      "the flaky task's 3 attempts started",
      async () => {
        const found = (await readFixtureLog(log)).filter((start) => start.userId === "retrier");
        return found.length >= 3 ? found : undefined;
      },
      { timeoutMs: 20_000 },
    );
    const at = attempts.map((attempt) => attempt.at).sort((x, y) => x - y);
    // 3 + 3 > 5: each attempt waits for the window the one before opened (5 ms of clock granularity).
    for (let i = 1; i < at.length; i++) {
      assert.ok(at[i]! - at[i - 1]! >= 995, `attempt ${i + 1} came ${at[i]! - at[i - 1]!} ms after attempt ${i}`);
    }
  });

  test("max running 2 across two servers: never more than 2 of the user's tasks run at once", async () => {
    await policies(a).setPlan({ name: "capped", policy: { limits: "100/1s", maxRunning: 2 } });
    await policies(a).setUserPolicy({ userId: "capper", assignment: { case: "plan", value: "capped" } });
    const RUN_MS = 1_500;
    const payload = new TextEncoder().encode(String(RUN_MS));
    const answers = [];
    for (let i = 0; i < 6; i++) {
      answers.push((await tasks(i % 2 === 0 ? a : b).submit({ userId: "capper", kind: "slow", payload })).disposition);
    }
    // At most 2 start at Submit (fewer when a process has due tasks waiting; the drainers start the rest).
    assert.ok(answers.filter((d) => d === Disposition.STARTED).length <= 2, answers.join(" "));
    assert.ok(
      answers.slice(2).every((d) => d === Disposition.QUEUED),
      answers.join(" "),
    );
    const starts = await pollUntil(
      "all 6 of capper's tasks started",
      async () => {
        const found = (await readFixtureLog(log)).filter((start) => start.userId === "capper");
        return found.length >= 6 ? found : undefined;
      },
      { timeoutMs: 30_000 },
    );
    const at = starts.map((start) => start.at).sort((x, y) => x - y);
    // Each task runs RUN_MS at least, so a third start while two ran would come within RUN_MS of the one two before it.
    for (let i = 2; i < at.length; i++) {
      assert.ok(
        at[i]! - at[i - 2]! >= RUN_MS - 5,
        `start ${i + 1} came ${at[i]! - at[i - 2]!} ms after start ${i - 1}`,
      );
    }
  });

  test("PolicyService is for admin keys: a user's key is PERMISSION_DENIED, and nothing changes", async () => {
    const denied = await codeOf(
      policies(a, ALICE_KEY).setUserPolicy({ userId: "alice", assignment: override("100/1s") }),
    );
    assert.equal(denied.code, Code.PermissionDenied);
    assert.equal((await codeOf(policies(b, ALICE_KEY).listPlans({}))).code, Code.PermissionDenied);
    assert.equal((await policies(a).getUserPolicy({ userId: "alice" })).source, PolicySource.DEFAULT);
  });

  test("a malformed policy is INVALID_ARGUMENT naming the field", async () => {
    const bad = await codeOf(policies(a).setUserPolicy({ userId: "x", assignment: override("ten per second") }));
    assert.equal(bad.code, Code.InvalidArgument);
    assert.match(bad.message, /^override\.limits: /);
    const noLimits = await codeOf(policies(a).setPlan({ name: "empty", policy: { limits: "" } }));
    assert.match(noLimits.message, /^policy\.limits: is required/);
    const badName = await codeOf(policies(a).setPlan({ name: "no spaces", policy: { limits: "1/1s" } }));
    assert.equal(badName.code, Code.InvalidArgument);
    assert.match(badName.message, /^name: /);
    const none = await codeOf(policies(a).setUserPolicy({ userId: "x" }));
    assert.match(none.message, /^assignment: /);
  });

  test("plans and users' policies list a page at a time, by name", async () => {
    for (const name of ["list-1", "list-2", "list-3"]) {
      await policies(a).setPlan({ name, policy: { limits: "1/1s" } });
    }
    const names: string[] = [];
    let pageToken = "";
    for (let pages = 0; pages < 20; pages++) {
      const page = await policies(b).listPlans({ pageSize: 2, pageToken });
      assert.ok(page.plans.length <= 2);
      names.push(...page.plans.map((plan) => plan.name));
      pageToken = page.nextPageToken;
      if (pageToken === "") break;
    }
    assert.deepEqual(names, [...names].sort());
    for (const name of ["capped", "default", "list-1", "list-2", "list-3", "pro"])
      assert.ok(names.includes(name), name);
    const users = await policies(a).listUserPolicies({ pageSize: 1000 });
    assert.ok(users.userPolicies.some((entry) => entry.userId === "vip" && entry.assignment.case === "override"));
  });

  test("a dry run answers when the last queued task would start now and under the proposal, changing nothing", async () => {
    for (let i = 0; i < 5; i++) await tasks(a).submit({ userId: "drain" });
    const answer = await policies(a).setUserPolicy({
      userId: "drain",
      assignment: override("10/1s,100/1m"),
      dryRun: true,
    });
    assert.equal(answer.dryRun, true);
    const forecast = answer.forecast!;
    assert.ok(forecast.queued >= 3, `queued ${forecast.queued}`);
    const now = timestampMs(forecast.lastStartNow!);
    const proposed = timestampMs(forecast.lastStartProposed!);
    assert.ok(now - proposed >= 2_000, `under 1/1s the last starts ${now - proposed} ms later than under 10/1s`);
    assert.equal(
      (await policies(a).getUserPolicy({ userId: "drain" })).source,
      PolicySource.DEFAULT,
      "nothing changed",
    );
  });
});
