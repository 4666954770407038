// Input validation: malformed input of each kind answers
// INVALID_ARGUMENT with a message naming the field, stores nothing, and the
// server keeps serving; a well-formed but unknown task id is NOT_FOUND.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { expectCode } from "../support/expect.js";
import { useTestServer } from "../support/fixture.js";
import { snapshot } from "../support/store.js";
import {
  Disposition,
  TaskState,
  type SubmitRequest,
  type SubmitRequestSchema,
} from "../../gen/ts/tollgate/v1/task_service_pb.js";

const MAX_PAYLOAD = 16;

const ctx = useTestServer("validation", {
  TOLLGATE_MAX_PAYLOAD_BYTES: String(MAX_PAYLOAD),
  // Long windows: nothing resets or drains while the file runs.
  TOLLGATE_RATE_LIMITS: "100/1h",
  // A kind nothing runs is refused (by default it would wait for a worker).
  TOLLGATE_REQUIRE_KNOWN_KINDS: "yes",
});

type SubmitInit = MessageInitShape<typeof SubmitRequestSchema>;

const malformedSubmits: [name: string, request: SubmitInit, field: string][] = [
  ["missing user_id", { userId: "" }, "user_id"],
  ["user_id of 129 bytes", { userId: "u".repeat(129) }, "user_id"],
  ["user_id of 65 characters but 130 bytes of UTF-8", { userId: "é".repeat(65) }, "user_id"],
  ["user_id with a newline", { userId: "alice\nbob" }, "user_id"],
  ["user_id with NUL", { userId: "alice\u0000" }, "user_id"],
  ["user_id with DEL", { userId: "\u007falice" }, "user_id"],
  ["user_id with a C1 control character", { userId: "alice\u0085" }, "user_id"],
  ["payload one byte over the cap", { userId: "v", payload: new Uint8Array(MAX_PAYLOAD + 1) }, "payload"],
  ["unknown kind", { userId: "v", kind: "no-such-handler" }, "kind"],
  ["kind that is not a name", { userId: "v", kind: "rm -rf /" }, "kind"],
  ["idempotency_key of 129 bytes", { userId: "v", idempotencyKey: "k".repeat(129) }, "idempotency_key"],
  ["idempotency_key with a control character", { userId: "v", idempotencyKey: "key\r\n" }, "idempotency_key"],
  ["unknown over_limit value", { userId: "v", overLimit: 7 as SubmitRequest["overLimit"] }, "over_limit"],
];

describe("Submit with malformed input", () => {
  for (const [name, request, field] of malformedSubmits) {
    test(`${name}: INVALID_ARGUMENT naming ${field}, nothing stored`, async () => {
      const userId = request.userId ?? "";
      const before = await snapshot(ctx.tollgate.redis, userId, ctx.tollgate.config.ratePolicy);
      const error = await expectCode(ctx.tollgate.client.submit(request), Code.InvalidArgument, name);
      assert.match(error.rawMessage, new RegExp(`\\b${field}\\b`), `the message names ${field}: "${error.rawMessage}"`);
      assert.deepEqual(
        await snapshot(ctx.tollgate.redis, userId, ctx.tollgate.config.ratePolicy),
        before,
        "nothing stored",
      );
    });
  }

  test("the limits are inclusive: 128-byte user_id and idempotency_key, payload of exactly the cap", async () => {
    const response = await ctx.tollgate.client.submit({
      userId: "é".repeat(64),
      idempotencyKey: "k".repeat(128),
      payload: new Uint8Array(MAX_PAYLOAD),
    });
    assert.equal(response.disposition, Disposition.STARTED);
  });

  test("user ids with colons, braces and globs are accepted as plain data", async () => {
    for (const userId of ["a:b", "{tag}", "*", "tg:q:victim", "名前"]) {
      const response = await ctx.tollgate.client.submit({ userId });
      assert.equal(response.disposition, Disposition.STARTED, `user ${JSON.stringify(userId)}`);
    }
  });
});

describe("GetTask with malformed input", () => {
  const malformedIds: [name: string, taskId: string][] = [
    ["empty task_id", ""],
    ["task_id too short", "abc"],
    ["task_id of 23 characters", "A".repeat(23)],
    ["task_id with a character outside base64url", `${"A".repeat(21)}!`],
    ["task_id that tries to reach another key", `${"A".repeat(18)}:q:x`],
  ];
  for (const [name, taskId] of malformedIds) {
    test(`${name}: INVALID_ARGUMENT naming task_id`, async () => {
      const error = await expectCode(ctx.tollgate.client.getTask({ taskId }), Code.InvalidArgument, name);
      assert.match(error.rawMessage, /\btask_id\b/, `the message names task_id: "${error.rawMessage}"`);
    });
  }

  test("a well-formed unknown task id: NOT_FOUND", async () => {
    for (const taskId of [`0.${"A".repeat(22)}`, "15.abcdefghij_-0123456789", "999.abcdefghij_-0123456789"]) {
      await expectCode(ctx.tollgate.client.getTask({ taskId }), Code.NotFound, `GetTask ${taskId}`);
    }
  });
});

test("after all the malformed calls the server still serves: Submit and GetTask work", async () => {
  const submitted = await ctx.tollgate.client.submit({ userId: "after-the-storm", payload: new Uint8Array([1, 2, 3]) });
  assert.equal(submitted.disposition, Disposition.STARTED);
  assert.match(submitted.taskId, /^\d+\.[A-Za-z0-9_-]{22}$/);
  const { task } = await ctx.tollgate.client.getTask({ taskId: submitted.taskId });
  assert.equal(task?.taskId, submitted.taskId);
  assert.equal(task?.userId, "after-the-storm");
  assert.ok(
    task?.state === TaskState.RUNNING || task?.state === TaskState.SUCCEEDED,
    `a started task is RUNNING or SUCCEEDED, got ${TaskState[task?.state ?? 0]}`,
  );
});
