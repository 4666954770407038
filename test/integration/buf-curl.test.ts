// Operators call any method by hand with `buf curl`,
// with no schema file: server reflection describes TaskService and Health.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { useTestServer } from "../support/fixture.js";

const run = promisify(execFile);
// node_modules/.bin/buf is what `npx buf` runs, without npx's start-up cost.
const BUF = resolve("node_modules/.bin/buf");

// A long first window, so the second Submit is QUEUED however slow buf curl starts.
const ctx = useTestServer("buf-curl", { TOLLGATE_RATE_LIMITS: "1/1m,20/1h" });

/** `buf curl` over plaintext HTTP/2 gRPC against the test server; rejects on a non-zero exit. */
async function bufCurl(...args: string[]): Promise<string> {
  try {
    const { stdout } = await run(BUF, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", ...args], {
      timeout: 15_000,
    });
    return stdout;
  } catch (error) {
    const failure = error as { code?: number; stdout?: string; stderr?: string; message: string };
    throw new Error(`buf curl ${args.join(" ")} failed (${failure.code}): ${failure.stderr || failure.message}`);
  }
}

test("--list-methods lists every TaskService, PolicyService and Health method through reflection", async () => {
  const methods = (await bufCurl("--list-methods", ctx.tollgate.address)).split("\n").filter((line) => line !== "");
  for (const method of [
    "tollgate.v1.TaskService/Submit",
    "tollgate.v1.TaskService/WatchQueue",
    "tollgate.v1.TaskService/GetTask",
    "tollgate.v1.PolicyService/SetPlan",
    "tollgate.v1.PolicyService/SetUserPolicy",
    "tollgate.v1.PolicyService/ListUserPolicies",
    "grpc.health.v1.Health/Check",
    "grpc.health.v1.Health/Watch",
  ]) {
    assert.ok(methods.includes(method), `${method} is listed; got:\n${methods.join("\n")}`);
  }
});

test('Submit with -d \'{"user_id":"123"}\' answers JSON with a task id and disposition', async () => {
  const response = JSON.parse(
    await bufCurl("-d", '{"user_id":"123"}', `${ctx.tollgate.address}/tollgate.v1.TaskService/Submit`),
  ) as Record<string, unknown>;
  assert.match(String(response.taskId), /^\d+\.[A-Za-z0-9_-]{22}$/, `taskId in ${JSON.stringify(response)}`);
  assert.equal(response.disposition, "DISPOSITION_STARTED");
  assert.ok(Array.isArray(response.windows) && response.windows.length === 2, "the policy's two windows");
  assert.equal(typeof response.estimatedStart, "string", "estimatedStart is an RFC 3339 timestamp");

  const again = JSON.parse(
    await bufCurl("-d", '{"user_id":"123"}', `${ctx.tollgate.address}/tollgate.v1.TaskService/Submit`),
  ) as Record<string, unknown>;
  assert.equal(again.disposition, "DISPOSITION_QUEUED");
  assert.equal(again.queuePosition, 1);

  const task = JSON.parse(
    await bufCurl(
      "-d",
      JSON.stringify({ task_id: response.taskId }),
      `${ctx.tollgate.address}/tollgate.v1.TaskService/GetTask`,
    ),
  ) as { task?: Record<string, unknown> };
  assert.equal(task.task?.taskId, response.taskId);
  assert.equal(task.task?.userId, "123");
});

test("grpc.health.v1.Health/Check answers SERVING, for the server and for TaskService", async () => {
  assert.deepEqual(JSON.parse(await bufCurl(`${ctx.tollgate.address}/grpc.health.v1.Health/Check`)), {
    status: "SERVING",
  });
  assert.deepEqual(
    JSON.parse(
      await bufCurl(
        "-d",
        '{"service":"tollgate.v1.TaskService"}',
        `${ctx.tollgate.address}/grpc.health.v1.Health/Check`,
      ),
    ),
    { status: "SERVING" },
  );
});

test("an error reaches buf curl as its gRPC status", async () => {
  await assert.rejects(
    bufCurl("-d", '{"user_id":""}', `${ctx.tollgate.address}/tollgate.v1.TaskService/Submit`),
    /invalid_argument[\s\S]*user_id/i,
  );
});

test("PolicyService through buf curl: set a user's override, then read its effective policy", async () => {
  await bufCurl(
    "-d",
    '{"user_id":"curl-vip","override":{"limits":"5/1s","max_running":2}}',
    `${ctx.tollgate.address}/tollgate.v1.PolicyService/SetUserPolicy`,
  );
  const got = JSON.parse(
    await bufCurl("-d", '{"user_id":"curl-vip"}', `${ctx.tollgate.address}/tollgate.v1.PolicyService/GetUserPolicy`),
  ) as { effective?: { limits?: string; maxRunning?: number }; source?: string };
  assert.deepEqual(got.effective, { limits: "5/1s", maxRunning: 2 });
  assert.equal(got.source, "POLICY_SOURCE_OVERRIDE");
});
