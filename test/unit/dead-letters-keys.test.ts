// The dead-letter keys' SCAN pattern and their parse (ListQueues finds users
// with only dead letters by SCAN): every partition's deadLetters() key maps
// back to its partition and user, whatever the user id holds; no other key
// of the layout does; the prefix is a literal in the pattern.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createKeys } from "../../src/redis/keys.js";

const AWKWARD = ["alice", "a:b", "}:dl:x", "{7}", "*", "x}:q:y", "ünï"];

test("every partition's dead-letter key parses back to its partition and user", () => {
  const keys = createKeys();
  for (const partition of keys.all) {
    for (const userId of AWKWARD) {
      assert.deepEqual(keys.deadLettersOf(partition.deadLetters(userId)), {
        partition: partition.partition,
        userId,
      });
    }
  }
});

test("no other key of a user or partition parses as a dead-letter key", () => {
  const keys = createKeys();
  const partition = keys.partition(3);
  for (const userId of AWKWARD) {
    for (const key of [partition.queue(userId), partition.stats(userId), partition.idempotency(userId, "k")]) {
      assert.equal(keys.deadLettersOf(key), undefined, key);
    }
  }
  for (const key of [partition.heads, partition.leases, partition.totals, keys.layout, ...keys.unpartitioned])
    assert.equal(keys.deadLettersOf(key), undefined, key);
  assert.equal(createKeys("other").deadLettersOf(partition.deadLetters("alice")), undefined, "another prefix");
});

test("the SCAN pattern escapes the prefix's glob characters", () => {
  assert.equal(createKeys().deadLettersPattern, "tg:{*}:dl:*");
  assert.equal(createKeys("a*b?[c]\\").deadLettersPattern, "a\\*b\\?\\[c\\]\\\\:{*}:dl:*");
});
