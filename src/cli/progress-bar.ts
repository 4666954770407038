import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { WatchQueueResponse } from "../../gen/ts/tollgate/v1/task_service_pb.js";

export interface Progress {
  readonly done: number;
  readonly total: number;
  readonly queued: number;
  readonly running: number;
  readonly failed: number;
  readonly etaMs: number | undefined;
  /** The queue is paused (PauseQueue): nothing of it starts until resumed. */
  readonly paused: boolean;
}

/**
 * Reads a WatchQueue message as progress. `known` is how many tasks the
 * watcher knows of (submitted by it); without it the total is what was
 * waiting or running when the stream began plus what finished since.
 */
export function progressOf(message: WatchQueueResponse, first: WatchQueueResponse, known?: number): Progress {
  const queued = Number(message.queued);
  const running = Number(message.running);
  const finished = Number(message.completed + message.deadLettered + message.expired);
  const total =
    known ?? Number(first.queued + first.running) + Math.max(0, finished - Number(first.queued + first.running));
  const done = known !== undefined ? Math.max(0, known - queued - running) : Math.min(total, finished);
  const eta =
    message.estimatedDrain && message.observedAt
      ? Math.max(0, timestampMs(message.estimatedDrain) - timestampMs(message.observedAt))
      : undefined;
  return {
    done,
    total: Math.max(total, done),
    queued,
    running,
    failed: Number(message.failed),
    etaMs: eta,
    paused: message.paused,
  };
}

export function renderProgress(userId: string, progress: Progress, width = 24): string {
  const ratio = progress.total === 0 ? 1 : progress.done / progress.total;
  const filled = Math.round(ratio * width);
  const bar = "#".repeat(filled) + "-".repeat(width - filled);
  const eta = progress.paused
    ? " | paused"
    : progress.etaMs === undefined
      ? ""
      : ` | ETA ${Math.ceil(progress.etaMs / 1000)}s`;
  return (
    `${userId || "all queues"} [${bar}] ${progress.done}/${progress.total} done | ${progress.queued} queued | ` +
    `${progress.running} running | ${progress.failed} failed${eta}`
  );
}
