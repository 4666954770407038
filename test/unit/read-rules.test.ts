// WatchQueue's and GetTask's rules in the core: what a request must look
// like and whose queues and tasks a caller may read.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Identity } from "../../src/core/authorization.js";
import { checkGetTask, checkWatchQueue, readTask } from "../../src/core/reads.js";
import { ServiceError, StatusCode } from "../../src/core/service-error.js";
import type { TaskRecord } from "../../src/core/store.js";

const ALICE: Identity = { kind: "user", userId: "alice" };
const ADMIN: Identity = { kind: "admin" };
const ANYONE: Identity = { kind: "anyone" };

const codeOf = (run: () => unknown): StatusCode | "ok" => {
  try {
    run();
    return "ok";
  } catch (error) {
    assert.ok(error instanceof ServiceError);
    return error.code;
  }
};

test("WatchQueue: a user watches its own queue only; every queue is for admins (and anyone, with auth off)", () => {
  assert.equal(
    codeOf(() => checkWatchQueue(ALICE, "alice")),
    "ok",
  );
  assert.equal(
    codeOf(() => checkWatchQueue(ALICE, "bob")),
    StatusCode.PERMISSION_DENIED,
  );
  assert.equal(
    codeOf(() => checkWatchQueue(ALICE, "")),
    StatusCode.PERMISSION_DENIED,
  );
  assert.equal(
    codeOf(() => checkWatchQueue(ADMIN, "")),
    "ok",
  );
  assert.equal(
    codeOf(() => checkWatchQueue(ANYONE, "")),
    "ok",
  );
  assert.equal(
    codeOf(() => checkWatchQueue(ADMIN, "a\nb")),
    StatusCode.INVALID_ARGUMENT,
  );
});

test("GetTask: the task id is checked before anything is read", () => {
  assert.equal(
    codeOf(() => checkGetTask("")),
    StatusCode.INVALID_ARGUMENT,
  );
  assert.equal(
    codeOf(() => checkGetTask("not-an-id")),
    StatusCode.INVALID_ARGUMENT,
  );
  assert.equal(
    codeOf(() => checkGetTask("0.AAAAAAAAAAAAAAAAAAAAAA")),
    "ok",
  );
});

test("GetTask: an unknown task is NOT_FOUND; another user's task is PERMISSION_DENIED", async () => {
  const record = { taskId: "0.AAAAAAAAAAAAAAAAAAAAAA", userId: "bob" } as TaskRecord;
  const store = { getTask: async (taskId: string) => (taskId === record.taskId ? record : undefined) };
  const refusal = (caller: Identity, taskId: string) =>
    readTask(store, caller, taskId).then(
      () => "ok" as const,
      (error: ServiceError) => error.code,
    );
  assert.equal(await refusal(ALICE, "0.BBBBBBBBBBBBBBBBBBBBBB"), StatusCode.NOT_FOUND);
  assert.equal(await refusal(ALICE, record.taskId), StatusCode.PERMISSION_DENIED);
  assert.equal(await refusal({ kind: "user", userId: "bob" }, record.taskId), "ok");
  assert.equal(await refusal(ADMIN, record.taskId), "ok");
});
