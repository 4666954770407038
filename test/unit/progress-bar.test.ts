// The CLI's progress line: a paused queue says so instead of an ETA.
import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { progressOf, renderProgress } from "../../src/cli/progress-bar.js";
import { WatchQueueResponseSchema } from "../../gen/ts/tollgate/v1/task_service_pb.js";

test("a paused queue's line says paused, not an ETA; a running one shows its ETA", () => {
  const first = create(WatchQueueResponseSchema, { userId: "u", queued: 3n });
  const running = create(WatchQueueResponseSchema, {
    userId: "u",
    queued: 3n,
    estimatedDrain: timestampFromMs(5_000),
    observedAt: timestampFromMs(1_000),
  });
  assert.match(renderProgress("u", progressOf(running, first)), /3 queued .*\| ETA 4s$/);
  const paused = create(WatchQueueResponseSchema, {
    userId: "u",
    queued: 3n,
    paused: true,
    observedAt: timestampFromMs(1_000),
  });
  assert.match(renderProgress("u", progressOf(paused, first)), /3 queued .*\| paused$/);
});
