// ListTasks' rules in the core, over the fake store: who may list whose
// tasks, page sizes, and page tokens that carry the store's cursor and belong
// to one listing.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Identity } from "../../src/core/authorization.js";
import { checkListTasks, listTasks, type ListTasksRequest } from "../../src/core/list-tasks.js";
import { ServiceError, StatusCode } from "../../src/core/service-error.js";
import { FakeStore } from "../support/fake-store.js";

const ALICE: Identity = { kind: "user", userId: "alice" };
const ADMIN: Identity = { kind: "admin" };
const TASK_ID = "3.AAAAAAAAAAAAAAAAAAAAAA";
const request = (fields: Partial<ListTasksRequest>): ListTasksRequest => ({
  userId: "alice",
  state: "queued",
  pageSize: 0,
  pageToken: "",
  ...fields,
});

const refusal = (run: () => unknown): { code: StatusCode; message: string } => {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof ServiceError);
    return { code: error.code, message: error.message };
  }
  assert.fail("expected a refusal");
};

test("a user lists its own tasks (an empty user_id is its own); an admin anyone's", () => {
  assert.equal(checkListTasks(ALICE, request({ userId: "" })).userId, "alice");
  assert.equal(refusal(() => checkListTasks(ALICE, request({ userId: "bob" }))).code, StatusCode.PERMISSION_DENIED);
  assert.equal(checkListTasks(ADMIN, request({ userId: "bob" })).userId, "bob");
  assert.equal(refusal(() => checkListTasks(ADMIN, request({ userId: "" }))).message, "user_id: is required");
  assert.match(refusal(() => checkListTasks(ADMIN, request({ state: undefined }))).message, /^state: is required/);
});

test("page size: 50 when unset, as asked up to 500, 500 beyond", () => {
  const size = (pageSize: number) => checkListTasks(ADMIN, request({ pageSize })).pageSize;
  assert.deepEqual([size(0), size(1), size(500), size(501), size(4_000_000_000)], [50, 1, 500, 500, 500]);
});

test("a page's token carries the store's cursor to the next page of the same listing only", async () => {
  const store = new FakeStore();
  store.listAnswers.push({ tasks: [], next: TASK_ID }, { tasks: [], next: undefined });
  const first = await listTasks(store, checkListTasks(ADMIN, request({ pageSize: 2 })));
  assert.notEqual(first.nextPageToken, "");
  const second = await listTasks(
    store,
    checkListTasks(ALICE, request({ userId: "", pageSize: 2, pageToken: first.nextPageToken })),
  );
  assert.equal(second.nextPageToken, "");
  assert.deepEqual(
    store.listed.map(({ userId, state, options }) => [userId, state, options.pageSize, options.after]),
    [
      ["alice", "queued", 2, undefined],
      ["alice", "queued", 2, TASK_ID],
    ],
  );
  for (const other of [{ userId: "bob" }, { state: "dead" as const }, { state: "running" as const }]) {
    const { code, message } = refusal(() =>
      checkListTasks(ADMIN, request({ ...other, pageToken: first.nextPageToken })),
    );
    assert.equal(code, StatusCode.INVALID_ARGUMENT);
    assert.match(message, /^page_token: does not belong to this listing/);
  }
  const forged = (token: object) => Buffer.from(JSON.stringify(token)).toString("base64url");
  for (const pageToken of [
    "not base64!",
    "e30",
    forged({ v: 2, u: "alice", s: "queued", a: TASK_ID }),
    forged({ v: 1, u: "alice", s: "done", a: TASK_ID }),
    forged({ v: 1, u: "alice", s: "queued", a: "../../x" }),
    "A".repeat(2000),
  ]) {
    assert.match(
      refusal(() => checkListTasks(ADMIN, request({ pageToken }))).message,
      /^page_token: is not a page token/,
      pageToken,
    );
  }
});
