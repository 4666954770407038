// Redis' errors as the core sees them: unreachable or full become
// StoreUnavailable (classified in src/redis), which the transport maps to
// UNAVAILABLE with a message per reason; anything else stays what it was.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { status } from "@grpc/grpc-js";
import { StoreUnavailable } from "../../src/core/store.js";
import { isUnanswered, toStoreError } from "../../src/redis/errors.js";
import { toStatus } from "../../src/grpc/status.js";

describe("store errors", () => {
  test("connection-level failures and 'not now' replies are unreachable", () => {
    for (const message of [
      "Connection is closed.",
      "Stream isn't writeable and enableOfflineQueue options is false",
      "Command timed out",
      'Reached the max retries per request limit (which is 0). Refer to "maxRetriesPerRequest" option for details.',
      "connect ECONNREFUSED 127.0.0.1:6379",
      "LOADING Redis is loading the dataset in memory",
      "BUSY Redis is busy running a script.",
      "MOVED 6364 127.0.0.1:7003",
      "ASK 6364 127.0.0.1:7003",
    ]) {
      const error = toStoreError(new Error(message));
      assert.ok(error instanceof StoreUnavailable, message);
      assert.equal(error.reason, "unreachable", message);
      assert.equal((error.cause as Error).message, message);
    }
  });

  test("OOM is full; other errors pass through unchanged", () => {
    const full = toStoreError(new Error("OOM command not allowed when used memory > 'maxmemory'."));
    assert.ok(full instanceof StoreUnavailable);
    assert.equal(full.reason, "full");
    const scriptError = new Error("ERR user_script:1: something broke");
    assert.equal(toStoreError(scriptError), scriptError);
    const already = new StoreUnavailable("unreachable", new Error("Connection is closed."));
    assert.equal(toStoreError(already), already);
  });

  test("whether a command may have run is read through the wrapper", () => {
    assert.equal(isUnanswered(toStoreError(new Error("Command timed out"))), true);
    assert.equal(
      isUnanswered(toStoreError(new Error("Stream isn't writeable and enableOfflineQueue options is false"))),
      false,
    );
  });

  test("the transport maps each reason to UNAVAILABLE with its own message", () => {
    const unreachable = toStatus(new StoreUnavailable("unreachable", new Error("Connection is closed.")));
    assert.equal(unreachable.status.code, status.UNAVAILABLE);
    assert.match(unreachable.status.details, /unreachable/);
    const full = toStatus(new StoreUnavailable("full", new Error("OOM ...")));
    assert.equal(full.status.code, status.UNAVAILABLE);
    assert.match(full.status.details, /full \(maxmemory reached\); nothing was stored/);
    assert.equal(
      toStatus(new Error("Connection is closed.")).status.code,
      status.INTERNAL,
      "raw Redis errors are not matched above src/redis",
    );
  });
});
