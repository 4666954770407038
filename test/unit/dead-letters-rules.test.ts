// RequeueDeadLetters' and PurgeDeadLetters' rules in the core, over the fake
// store: who may act on whose dead letters, which ids a request may name, and
// what reaches the store.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ANYONE, type Identity } from "../../src/core/authorization.js";
import { changeDeadLetters, checkDeadLetters } from "../../src/core/dead-letters.js";
import { ServiceError, StatusCode } from "../../src/core/service-error.js";
import { FakeStore } from "../support/fake-store.js";

const ALICE: Identity = { kind: "user", userId: "alice" };
const ADMIN: Identity = { kind: "admin" };
const TASK_ID = "3.AAAAAAAAAAAAAAAAAAAAAA";
const OTHER_ID = "3.BBBBBBBBBBBBBBBBBBBBBB";

const refusal = (run: () => unknown): { code: StatusCode; message: string } => {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof ServiceError);
    return { code: error.code, message: error.message };
  }
  assert.fail("expected a refusal");
};

test("no ids means every dead letter; repeated ids are taken once; an empty user_id is the caller's user", () => {
  assert.deepEqual(checkDeadLetters(ADMIN, "requeue", { userId: "bob", taskIds: [] }), { userId: "bob", tasks: "all" });
  assert.deepEqual(checkDeadLetters(ALICE, "purge", { userId: "", taskIds: [TASK_ID, OTHER_ID, TASK_ID] }), {
    userId: "alice",
    tasks: [TASK_ID, OTHER_ID],
  });
  assert.deepEqual(checkDeadLetters(ANYONE, "purge", { userId: "carol", taskIds: [] }).userId, "carol");
});

test("a user's key acts on its own user only; an admin's (or anyone's, auth off) on any", () => {
  const denied = refusal(() => checkDeadLetters(ALICE, "purge", { userId: "bob", taskIds: [] }));
  assert.equal(denied.code, StatusCode.PERMISSION_DENIED);
  assert.match(denied.message, /acts for user "alice" only; it may not purge user "bob"'s dead letters/);
  assert.equal(checkDeadLetters(ADMIN, "purge", { userId: "bob", taskIds: [] }).userId, "bob");
});

test("INVALID_ARGUMENT: no user, a malformed user, an id that is not a task id, more than 1000 ids", () => {
  const cases: [Identity, string, string[], RegExp][] = [
    [ADMIN, "", [], /^user_id: is required/],
    [ADMIN, "a\nb", [], /^user_id: contains the control character/],
    [ADMIN, "bob", [TASK_ID, "3.short"], /^task_ids\[1\]: is not a Tollgate task id/],
    [ADMIN, "bob", Array.from({ length: 1001 }, () => TASK_ID), /^task_ids: names 1001 tasks; the limit is 1000/],
    // Malformed before forbidden: the same answer whoever asks.
    [ALICE, "bob", ["nope"], /^task_ids\[0\]: /],
  ];
  for (const [caller, userId, taskIds, message] of cases) {
    const refused = refusal(() => checkDeadLetters(caller, "requeue", { userId, taskIds }));
    assert.equal(refused.code, StatusCode.INVALID_ARGUMENT, String(message));
    assert.match(refused.message, message);
  }
});

test("the checked request reaches the store's requeue or purge", async () => {
  const store = new FakeStore();
  const query = checkDeadLetters(ADMIN, "requeue", { userId: "bob", taskIds: [TASK_ID] });
  assert.deepEqual(await changeDeadLetters(store, "requeue", query), { done: 1, notFound: [] });
  await changeDeadLetters(store, "purge", checkDeadLetters(ADMIN, "purge", { userId: "bob", taskIds: [] }));
  assert.deepEqual(store.deadLetterCalls, [
    { action: "requeue", userId: "bob", tasks: [TASK_ID] },
    { action: "purge", userId: "bob", tasks: "all" },
  ]);
});
