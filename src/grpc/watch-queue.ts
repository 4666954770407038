import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { ServerWritableStream } from "@grpc/grpc-js";
import { reportFailure } from "./status.js";
import type { Logger } from "../logger.js";
import { metrics } from "../metrics.js";
import type { ProgressHub } from "../core/progress-hub.js";
import type { RatePolicy } from "../core/rate-policy.js";
import { nthStartTime } from "../core/start-schedule.js";
import type { QueueSnapshot } from "../core/store.js";
import { WatchCounts, type FinishedCounts } from "../core/watch-counts.js";
import {
  WatchQueueResponseSchema,
  type WatchQueueRequest,
  type WatchQueueResponse,
} from "../../gen/ts/tollgate/v1/task_service_pb.js";

/**
 * The moments WatchQueue predicts, from the user's policy and the windows' state
 * (not from past rates): when the next queued task may start and when the
 * last one will, if each starts as soon as the policy allows.
 */
function predictDrain(
  hostPolicy: RatePolicy,
  snapshot: QueueSnapshot,
): { nextStart: number | undefined; estimatedDrain: number | undefined } {
  // The user's own policy, read with its windows (policies as data).
  const policy = snapshot.policy?.windows ?? hostPolicy;
  // A paused queue starts nothing until it is resumed, and nobody knows when.
  if (snapshot.queued === 0 || snapshot.paused) return { nextStart: undefined, estimatedDrain: undefined };
  if (!snapshot.windows) {
    return {
      nextStart: snapshot.dueAt === undefined ? undefined : Math.max(snapshot.now, snapshot.dueAt),
      estimatedDrain: undefined,
    };
  }
  // The drainer's schedule can be later than the policy (a retry's backoff).
  const notBefore = Math.max(snapshot.now, snapshot.dueAt ?? snapshot.now);
  return {
    nextStart: Math.max(notBefore, nthStartTime(policy, snapshot.windows, snapshot.now, 1)),
    estimatedDrain: Math.max(notBefore, nthStartTime(policy, snapshot.windows, snapshot.now, snapshot.queued)),
  };
}

function watchQueueMessage(
  userId: string,
  policy: RatePolicy,
  snapshot: QueueSnapshot,
  finished: FinishedCounts,
): WatchQueueResponse {
  const { nextStart, estimatedDrain } = predictDrain(policy, snapshot);
  return create(WatchQueueResponseSchema, {
    userId,
    queued: BigInt(snapshot.queued),
    running: BigInt(snapshot.running),
    completed: BigInt(finished.succeeded),
    failed: BigInt(finished.failed),
    deadLettered: BigInt(finished.dead),
    expired: BigInt(finished.expired),
    nextStart: nextStart === undefined ? undefined : timestampFromMs(nextStart),
    estimatedDrain: estimatedDrain === undefined ? undefined : timestampFromMs(estimatedDrain),
    drained: snapshot.queued === 0 && snapshot.running === 0,
    observedAt: timestampFromMs(snapshot.now),
    paused: snapshot.paused ?? false,
    cancelled: BigInt(finished.cancelled),
    requeued: BigInt(finished.requeued),
  });
}

/**
 * Serves one WatchQueue stream. A slow reader gets the latest snapshot when
 * it can take one (HTTP/2 flow control decides), never a growing buffer; the
 * stream holds at most one pending message.
 */
export async function serveWatchQueue(
  call: ServerWritableStream<WatchQueueRequest, WatchQueueResponse>,
  hub: ProgressHub,
  policy: RatePolicy,
  logger: Logger,
): Promise<void> {
  const { userId, follow } = call.request;
  // Counts since the stream began, across the user's counters expiring while idle.
  const counts = new WatchCounts();
  let pending: WatchQueueResponse | undefined;
  let waitingForDrain = false;
  let finished = false;
  let stop: (() => void) | undefined;

  const finish = (end: () => void): void => {
    if (finished) return;
    finished = true;
    stop?.();
    call.off("drain", onDrain);
    end();
  };
  const send = (message: WatchQueueResponse): void => {
    if (finished) return;
    if (waitingForDrain) {
      if (pending) metrics.watchMessagesSuperseded.inc();
      pending = message;
      return;
    }
    metrics.watchMessagesSent.inc();
    if (!call.write(message)) waitingForDrain = true;
    if (message.drained && !follow) finish(() => call.end());
  };
  const onDrain = (): void => {
    waitingForDrain = false;
    const next = pending;
    pending = undefined;
    if (next) send(next);
  };
  call.on("drain", onDrain);
  call.once("cancelled", () => finish(() => {}));

  try {
    stop = await hub.watch(userId, {
      deliver: (snapshot) => {
        send(watchQueueMessage(userId, policy, snapshot, counts.next(snapshot)));
      },
      fail: (error) => {
        const status = reportFailure(logger, error, { method: "WatchQueue" });
        finish(() => call.emit("error", status));
      },
    });
    if (finished) stop();
  } catch (error) {
    const status = reportFailure(logger, error, { method: "WatchQueue" });
    finish(() => call.emit("error", status));
  }
}
