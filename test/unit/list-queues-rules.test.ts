// ListQueues' rules in the core, over the fake store: admins only, the order
// (largest backlog first, then by user id), page sizes, and page tokens that
// carry the last (backlog, user id) and belong to this listing.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ANYONE, type Identity } from "../../src/core/authorization.js";
import { checkListQueues, listQueues, pageOfQueues, type ListQueuesRequest } from "../../src/core/list-queues.js";
import { checkListTasks } from "../../src/core/list-tasks.js";
import { ServiceError, StatusCode } from "../../src/core/service-error.js";
import type { QueueSummary } from "../../src/core/store.js";
import { FakeStore } from "../support/fake-store.js";

const ALICE: Identity = { kind: "user", userId: "alice" };
const ADMIN: Identity = { kind: "admin" };
const request = (fields: Partial<ListQueuesRequest> = {}): ListQueuesRequest => ({
  pageSize: 0,
  pageToken: "",
  ...fields,
});
const queue = (userId: string, fields: Partial<QueueSummary> = {}): QueueSummary => ({
  userId,
  queued: 0,
  running: 0,
  waitingToRetry: 0,
  dead: 0,
  paused: false,
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

test("admins only: a user's key is PERMISSION_DENIED; with auth off anyone may", () => {
  const denied = refusal(() => checkListQueues(ALICE, request()));
  assert.equal(denied.code, StatusCode.PERMISSION_DENIED);
  assert.match(denied.message, /acts for user "alice" only; it may not list every user's queue \(admins only\)/);
  assert.deepEqual(checkListQueues(ADMIN, request()), { pageSize: 50, after: undefined });
  assert.deepEqual(checkListQueues(ANYONE, request()), { pageSize: 50, after: undefined });
});

test("page size: 50 when unset, as asked up to 500, 500 beyond", () => {
  assert.equal(checkListQueues(ADMIN, request({ pageSize: 0 })).pageSize, 50);
  assert.equal(checkListQueues(ADMIN, request({ pageSize: 7 })).pageSize, 7);
  assert.equal(checkListQueues(ADMIN, request({ pageSize: 100_000 })).pageSize, 500);
});

test("order: the largest backlog (queued + waiting to retry) first, then by user id; running and dead do not count", () => {
  const queues = [
    queue("carol", { queued: 1, running: 9, dead: 9 }),
    queue("bob", { queued: 2 }),
    queue("alice", { queued: 1, waitingToRetry: 1 }),
    queue("dan", { dead: 1 }),
    queue("erin", { waitingToRetry: 3 }),
  ];
  const page = pageOfQueues(queues, { pageSize: 50, after: undefined });
  assert.deepEqual(
    page.queues.map((q) => q.userId),
    ["erin", "alice", "bob", "carol", "dan"],
  );
  assert.equal(page.nextPageToken, "", "one page holds them all");
});

test("pages continue below the last user of the page before: each user once while nothing changes", async () => {
  const users = ["u1", "u2", "u3", "u4", "u5"].map((id, i) => queue(id, { queued: i % 3 }));
  const store = new FakeStore();
  const seen: string[] = [];
  let pageToken = "";
  let pages = 0;
  do {
    store.queuesAnswers.push([...users].reverse());
    const page = await listQueues(store, checkListQueues(ADMIN, request({ pageSize: 2, pageToken })));
    assert.ok(page.queues.length <= 2);
    seen.push(...page.queues.map((q) => q.userId));
    pageToken = page.nextPageToken;
    pages++;
  } while (pageToken !== "");
  assert.deepEqual(seen, ["u3", "u2", "u5", "u1", "u4"]);
  assert.equal(pages, 3);
  assert.equal(store.queuesListed, 3, "each page reads afresh");
});

test("a user whose backlog changed between pages: listed again if it fell below the cursor, skipped if it rose above", () => {
  const first = pageOfQueues([queue("a", { queued: 5 }), queue("b", { queued: 4 }), queue("c", { queued: 3 })], {
    pageSize: 1,
    after: undefined,
  });
  assert.deepEqual(
    first.queues.map((q) => q.userId),
    ["a"],
  );
  const after = checkListQueues(ADMIN, request({ pageToken: first.nextPageToken })).after;
  assert.deepEqual(after, { backlog: 5, userId: "a" });
  // a drained to 1 (listed again); c grew to 6 (above the cursor: skipped).
  const second = pageOfQueues([queue("a", { queued: 1 }), queue("b", { queued: 4 }), queue("c", { queued: 6 })], {
    pageSize: 5,
    after,
  });
  assert.deepEqual(
    second.queues.map((q) => q.userId),
    ["b", "a"],
  );
});

test("INVALID_ARGUMENT for a malformed token or one of another listing (and ListTasks refuses ListQueues' tokens)", () => {
  const { nextPageToken } = pageOfQueues([queue("a", { queued: 1 }), queue("b")], { pageSize: 1, after: undefined });
  assert.notEqual(nextPageToken, "");
  const listTasksToken = Buffer.from(
    JSON.stringify({ v: 1, u: "a", s: "queued", a: "3.AAAAAAAAAAAAAAAAAAAAAA" }),
  ).toString("base64url");
  const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString("base64url");
  for (const pageToken of [
    "garbage!",
    "Z2FyYmFnZQ",
    listTasksToken,
    encode({ v: 2, l: "queues", b: 1, u: "a" }),
    encode({ v: 1, l: "queues", b: -1, u: "a" }),
    encode({ v: 1, l: "queues", b: 1.5, u: "a" }),
    encode({ v: 1, l: "queues", b: 1, u: "" }),
    "A".repeat(2000),
  ]) {
    const refused = refusal(() => checkListQueues(ADMIN, request({ pageToken })));
    assert.equal(refused.code, StatusCode.INVALID_ARGUMENT, pageToken);
    assert.match(refused.message, /^page_token: is not a page token of ListQueues/);
  }
  const other = refusal(() =>
    checkListTasks(ADMIN, { userId: "a", state: "queued", pageSize: 0, pageToken: nextPageToken }),
  );
  assert.equal(other.code, StatusCode.INVALID_ARGUMENT);
});
