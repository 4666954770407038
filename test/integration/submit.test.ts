// Submit under the default policy: a burst of 25 gives 1 STARTED and 24
// QUEUED, in order.
import assert from "node:assert/strict";
import { test } from "node:test";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { useTestServer } from "../support/fixture.js";
import { Disposition } from "../../gen/ts/tollgate/v1/task_service_pb.js";

const ctx = useTestServer("submit");

test("25 Submits in a burst under the default policy: 1 STARTED, 24 QUEUED in order", async () => {
  const responses = [];
  for (let i = 0; i < 25; i++) responses.push(await ctx.tollgate.client.submit({ userId: "123" }));
  assert.equal(responses[0]!.disposition, Disposition.STARTED);
  const queued = responses.slice(1);
  assert.deepEqual(
    queued.map((r) => r.disposition),
    queued.map(() => Disposition.QUEUED),
  );
  assert.deepEqual(
    queued.map((r) => r.queuePosition),
    Array.from({ length: 24 }, (_, i) => i + 1),
  );
  const starts = queued.map((r) => timestampMs(r.estimatedStart!));
  for (let i = 1; i < starts.length; i++) assert.ok(starts[i]! >= starts[i - 1]!, `estimate ${i} went backwards`);
  const minute = responses.at(-1)!.windows[1]!;
  assert.equal(minute.limit, 20);
  assert.equal(minute.remaining, 19, "the per-minute window used 1 unit, not 25");
});
