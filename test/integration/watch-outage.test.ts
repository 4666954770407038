// WatchQueue across a Redis outage, on one server: while Redis is away a
// watch ends UNAVAILABLE (never OK, which a client reads as "done"), and once
// Redis is back the same server's next watch streams the queue to drained,
// without a restart.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { pollUntil } from "../support/expect.js";
import { checkStatus, healthClient } from "../support/health.js";
import { useTestServer } from "../support/fixture.js";
import { Disposition, type WatchQueueResponse } from "../../gen/ts/tollgate/v1/task_service_pb.js";

const ctx = useTestServer("watch-outage", { TOLLGATE_RATE_LIMITS: "1/1s" });

interface WatchEnd {
  readonly messages: WatchQueueResponse[];
  /** The status the stream ended with: "OK" or the error's code name. */
  readonly code: string;
  readonly message: string;
}

async function watchToEnd(userId: string): Promise<WatchEnd> {
  const messages: WatchQueueResponse[] = [];
  try {
    for await (const message of ctx.tollgate.client.watchQueue({ userId }, { timeoutMs: 15_000 }))
      messages.push(message);
    return { messages, code: "OK", message: "" };
  } catch (error) {
    const connectError = ConnectError.from(error);
    return { messages, code: Code[connectError.code], message: connectError.rawMessage };
  }
}

test("Redis stops: WatchQueue ends UNAVAILABLE; Redis returns: the next WatchQueue streams to drained", async () => {
  const health = healthClient(ctx.tollgate.address);
  const { client } = ctx.tollgate;

  await ctx.redis.stop();
  await pollUntil("NOT_SERVING", async () => (await checkStatus(health)) === "NOT_SERVING", { timeoutMs: 3_000 });
  // Twice: the first watch is the one that tries (and fails) to subscribe;
  // the second must not be answered from that failure's leftovers either.
  for (const attempt of [1, 2]) {
    const end = await watchToEnd("returning");
    assert.equal(
      end.code,
      "Unavailable",
      `watch #${attempt} with Redis stopped ended ${end.code} after ${end.messages.length} messages`,
    );
    assert.equal(end.messages.length, 0, "no snapshot without Redis");
    assert.match(end.message, /Redis/, "the status says what is unreachable");
  }

  await ctx.redis.start();
  await pollUntil("SERVING again", async () => (await checkStatus(health)) === "SERVING", { timeoutMs: 10_000 });
  const first = await client.submit({ userId: "returning" });
  assert.equal(first.disposition, Disposition.STARTED);
  const second = await client.submit({ userId: "returning" });
  assert.equal(second.disposition, Disposition.QUEUED);
  const third = await client.submit({ userId: "returning" });
  assert.equal(third.disposition, Disposition.QUEUED);

  const end = await watchToEnd("returning");
  assert.equal(end.code, "OK", `the watch after Redis came back ended ${end.code}: ${end.message}`);
  assert.ok(end.messages.length >= 2, `${end.messages.length} messages: a snapshot at once, then the drain`);
  assert.ok(end.messages[0]!.queued >= 1n, `the first snapshot shows the queue (${end.messages[0]!.queued} queued)`);
  assert.ok(end.messages.at(-1)!.drained, "the stream ends with the drained message");
});
