// RESOURCE_EXHAUSTED: over the limit with over_limit=REJECT, and a
// backlog at its cap, answer RESOURCE_EXHAUSTED with google.rpc.RetryInfo and
// a retry-after-ms trailer, and store nothing: no task, no queue entry, no
// idempotency key, and no unit of any window.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Code } from "@connectrpc/connect";
import { expectCode, retryHint } from "../support/expect.js";
import { useTestServer } from "../support/fixture.js";
import { keys, snapshot, windowCount } from "../support/store.js";
import { Disposition, OverLimit } from "../../gen/ts/tollgate/v1/task_service_pb.js";

const MINUTE = 60_000;
const HOUR = 3_600_000;

// Long windows, so nothing resets (and nothing drains) while a test runs.
for (const policy of ["1/1m,10/1h", "10/1h,1/1m"]) {
  describe(`over_limit=REJECT under policy ${policy}`, () => {
    const fixture = useTestServer("reject", { TOLLGATE_RATE_LIMITS: policy });

    test("a REJECT Submit with room in every window starts the task", async () => {
      const response = await fixture.tollgate.client.submit({ userId: "roomy", overLimit: OverLimit.REJECT });
      assert.equal(response.disposition, Disposition.STARTED);
    });

    test("over the limit: RESOURCE_EXHAUSTED with RetryInfo and retry-after-ms, nothing stored, no window unit used", async () => {
      const { client, config, redis } = fixture.tollgate;
      const userId = "rejected";
      const first = await client.submit({ userId });
      assert.equal(first.disposition, Disposition.STARTED);
      const before = await snapshot(redis, userId, config.ratePolicy);
      assert.deepEqual(Object.values(before.windows), [1, 1], "the first start used one unit of each window");

      const error = await expectCode(
        client.submit({
          userId,
          overLimit: OverLimit.REJECT,
          idempotencyKey: "reject-1",
          payload: new Uint8Array([1, 2]),
        }),
        Code.ResourceExhausted,
        "REJECT over the limit",
      );
      assert.ok(error.rawMessage.length > 0, "the status has a message a person can act on");
      const { retryInfoMs } = retryHint(error);
      // The 1-minute window opened a moment ago: the next start is due when it resets.
      assert.ok(
        retryInfoMs > MINUTE - 10_000 && retryInfoMs <= MINUTE,
        `retry delay ${retryInfoMs} ms is about a minute`,
      );

      const afterwards = await snapshot(redis, userId, config.ratePolicy);
      assert.deepEqual(afterwards, before, "a refused Submit changes nothing in Redis");
      assert.equal(await redis.exists(keys.forUser(userId).queue(userId)), 0, "the user has no queue");
      assert.equal(
        await redis.exists(keys.forUser(userId).idempotency(userId, "reject-1")),
        0,
        "the idempotency key is not taken",
      );
    });

    test("repeated refusals use no unit of any window, then QUEUE mode still queues", async () => {
      const { client, config, redis } = fixture.tollgate;
      const userId = "hammering";
      await client.submit({ userId });
      const counts = async () => Promise.all(config.ratePolicy.map((w) => windowCount(redis, userId, w.durationMs)));
      const before = await counts();
      for (let i = 0; i < 5; i++) {
        await expectCode(
          client.submit({ userId, overLimit: OverLimit.REJECT }),
          Code.ResourceExhausted,
          `REJECT #${i + 1}`,
        );
      }
      assert.deepEqual(await counts(), before, "window counts before and after five refused REJECTs");
      const queued = await client.submit({ userId, overLimit: OverLimit.QUEUE });
      assert.equal(queued.disposition, Disposition.QUEUED);
      assert.equal(queued.queuePosition, 1, "the refused tasks left no place in the queue behind");
      const hour = queued.windows.find((w) => w.limit === 10);
      assert.equal(hour?.remaining, 9, "the hourly window has used exactly one unit");
    });

    test("a REJECT refusal for one user leaves another user unaffected", async () => {
      const { client } = fixture.tollgate;
      await client.submit({ userId: "busy" });
      await expectCode(client.submit({ userId: "busy", overLimit: OverLimit.REJECT }), Code.ResourceExhausted);
      const other = await client.submit({ userId: "idle", overLimit: OverLimit.REJECT });
      assert.equal(other.disposition, Disposition.STARTED);
    });
  });
}

describe("backlog at its cap (TOLLGATE_MAX_BACKLOG=3)", () => {
  const fixture = useTestServer("backlog", { TOLLGATE_RATE_LIMITS: "1/1h", TOLLGATE_MAX_BACKLOG: "3" });

  test("the fourth queued task is refused with RESOURCE_EXHAUSTED and RetryInfo; nothing is stored", async () => {
    const { client, config, redis } = fixture.tollgate;
    const userId = "backlogged";
    const dispositions = [];
    for (let i = 0; i < 4; i++) dispositions.push(await client.submit({ userId }));
    assert.deepEqual(
      dispositions.map((r) => [Disposition[r.disposition], r.queuePosition]),
      [
        ["STARTED", 0],
        ["QUEUED", 1],
        ["QUEUED", 2],
        ["QUEUED", 3],
      ],
    );
    const before = await snapshot(redis, userId, config.ratePolicy);
    assert.equal(before.queue.length, 3);

    const error = await expectCode(
      client.submit({ userId, idempotencyKey: "over-cap" }),
      Code.ResourceExhausted,
      "Submit with the backlog full",
    );
    assert.ok(error.rawMessage.length > 0);
    const { retryInfoMs } = retryHint(error);
    // A place frees when the head starts, when the hourly window resets.
    assert.ok(retryInfoMs > HOUR - 60_000 && retryInfoMs <= HOUR, `retry delay ${retryInfoMs} ms is about an hour`);

    await expectCode(
      client.submit({ userId, overLimit: OverLimit.REJECT }),
      Code.ResourceExhausted,
      "REJECT with the backlog full",
    );
    const afterwards = await snapshot(redis, userId, config.ratePolicy);
    assert.deepEqual(afterwards, before, "a refused Submit changes nothing in Redis");
    assert.equal(
      await redis.exists(keys.forUser(userId).idempotency(userId, "over-cap")),
      0,
      "the idempotency key is not taken",
    );
  });

  test("another user's backlog is independent", async () => {
    const { client } = fixture.tollgate;
    for (let i = 0; i < 4; i++) await client.submit({ userId: "full" });
    await expectCode(client.submit({ userId: "full" }), Code.ResourceExhausted);
    assert.equal((await client.submit({ userId: "empty" })).disposition, Disposition.STARTED);
    assert.equal((await client.submit({ userId: "empty" })).disposition, Disposition.QUEUED);
  });
});
