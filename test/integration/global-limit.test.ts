// The global limit (TOLLGATE_GLOBAL_LIMITS, or PolicyService's
// SetGlobalLimits): windows over every user together, held across two
// servers on one Redis, and when they bind users are still served in the
// order they became due: every user's first task before any user's third.
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { createPolicyClient, createTollgateClient } from "../../src/client/client.js";
import { parseRatePolicy } from "../../src/core/rate-policy.js";
import { usePrivateRedis } from "../support/fixture.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { ADMIN_KEY, ALICE_KEY, writeKeyFile } from "../support/api-keys.js";
import { pollUntil } from "../support/expect.js";
import { checkStarts } from "../support/task-log.js";
import { describeRun, runCommand } from "../support/command.js";
import { Disposition, TaskState, type TaskService } from "../../gen/ts/tollgate/v1/task_service_pb.js";
import type { PolicyService } from "../../gen/ts/tollgate/v1/policy_service_pb.js";

const FIXTURE_HANDLERS = fileURLToPath(new URL("../fixtures/handlers.ts", import.meta.url));
const ctx = usePrivateRedis("global-limit");

describe("a global limit of 3/1s on two servers sharing one Redis", () => {
  let a: TestServer;
  let b: TestServer;
  const tasks = (server: TestServer): Client<typeof TaskService> =>
    createTollgateClient({ baseUrl: server.address, apiKey: ADMIN_KEY });
  const policies = (server: TestServer, key = ADMIN_KEY): Client<typeof PolicyService> =>
    createPolicyClient({ baseUrl: server.address, apiKey: key });

  /** When each task started (Redis' clock, from its record), once all have succeeded. */
  async function startsOf(client: Client<typeof TaskService>, taskIds: readonly string[]): Promise<number[]> {
    return pollUntil(
      `all ${taskIds.length} tasks succeeded`,
      async () => {
        const found = await Promise.all(taskIds.map(async (taskId) => (await client.getTask({ taskId })).task));
        if (!found.every((task) => task?.state === TaskState.SUCCEEDED)) return undefined;
        return found.map((task) => timestampMs(task!.startedAt!));
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
  }

  before(async () => {
    await writeKeyFile(ctx.dir);
    process.env.TOLLGATE_FIXTURE_LOG = join(ctx.dir, "starts.log");
    const env = {
      TOLLGATE_AUTH_KEYS: join(ctx.dir, "keys"),
      TOLLGATE_RATE_LIMITS: "1/1s,20/1m",
      TOLLGATE_GLOBAL_LIMITS: "3/1s",
      TOLLGATE_HANDLER: FIXTURE_HANDLERS,
    };
    a = await startTestServer(ctx.redis.url, env);
    b = await startTestServer(ctx.redis.url, env);
  });
  after(async () => {
    await a?.close();
    await b?.close();
  });

  test("10 users submit 5 each: no global window holds more than 3 starts; every first before any third", async () => {
    const users = Array.from({ length: 10 }, (_, i) => `g${i}`);
    // A round at a time, every user at once: each user's first task is submitted before any third.
    const submitted: string[][] = users.map(() => []);
    for (let round = 0; round < 5; round++) {
      const answers = await Promise.all(users.map((userId, u) => tasks(u % 2 === 0 ? a : b).submit({ userId })));
      for (const [u, answer] of answers.entries()) submitted[u]!.push(answer.taskId);
    }
    const starts = await Promise.all(submitted.map((ids) => startsOf(tasks(a), ids)));
    const all = starts.flat();
    // Fixed windows of 3/1s over everyone's starts. The starts are the claims' moments, some ms
    // after the reserve that took their unit (more on a loaded machine): 400 ms of slack.
    const check = checkStarts(parseRatePolicy("3/1s"), all, Math.min(...all), 400);
    assert.equal(check.violations, 0, `starts: ${[...all].sort((x, y) => x - y).join(", ")}`);
    const lastFirst = Math.max(...starts.map((user) => Math.min(...user)));
    const firstThird = Math.min(...starts.map((user) => [...user].sort((x, y) => x - y)[2]!));
    assert.ok(
      lastFirst <= firstThird,
      `the last first start ${lastFirst} came after a third start ${firstThird}: ${JSON.stringify(starts)}`,
    );
  });

  test("set at run time through PolicyService: none lets everyone start, 2/1m holds the third back, delete restores 3/1s", async () => {
    assert.deepEqual(
      { ...(await policies(b).getGlobalLimits({})).globalLimits },
      { $typeName: "tollgate.v1.GlobalLimits", limits: "3/1s", fromConfig: true },
    );
    await policies(a).setGlobalLimits({ limits: "none" });
    await new Promise((resolve) => setTimeout(resolve, 600)); // each process trusts the spec it read for 500 ms
    const free = await Promise.all(
      ["n1", "n2", "n3", "n4", "n5"].map(async (userId) => (await tasks(b).submit({ userId })).disposition),
    );
    assert.deepEqual(free, Array(5).fill(Disposition.STARTED));

    await policies(b).setGlobalLimits({ limits: "2/1m" });
    await new Promise((resolve) => setTimeout(resolve, 600));
    const held = [];
    for (const userId of ["m1", "m2", "m3"]) held.push((await tasks(a).submit({ userId })).disposition);
    assert.ok(held.filter((d) => d === Disposition.STARTED).length <= 2, held.join(" "));
    assert.equal(held[2], Disposition.QUEUED, "the third start of the minute waits");

    assert.equal((await policies(a).deleteGlobalLimits({})).deleted, true);
    assert.equal((await policies(a).getGlobalLimits({})).globalLimits?.limits, "3/1s");

    const bad = await policies(a)
      .setGlobalLimits({ limits: "3 per second" })
      .then(
        () => undefined,
        (error: unknown) => ConnectError.from(error),
      );
    assert.equal(bad?.code, Code.InvalidArgument);
    assert.match(bad?.rawMessage ?? "", /^limits: /);
    // The CLI's view of the same.
    const cli = await runCommand(process.execPath, [
      new URL("../../bin/tollgate.js", import.meta.url).pathname,
      "policy",
      "global",
      "--addr",
      a.address.replace("http://", ""),
      "--api-key",
      ADMIN_KEY,
    ]);
    assert.equal(cli.code, 0, describeRun(cli));
    assert.equal(cli.stdout.trim(), "global limits: 3/1s (TOLLGATE_GLOBAL_LIMITS)");

    const denied = await policies(a, ALICE_KEY)
      .setGlobalLimits({ limits: "none" })
      .then(
        () => undefined,
        (error: unknown) => ConnectError.from(error),
      );
    assert.equal(denied?.code, Code.PermissionDenied);
  });
});
