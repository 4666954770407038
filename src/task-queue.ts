import type { Redis } from "ioredis";
import type { Keys } from "./keys.js";
import { LuaScript } from "./lua-script.js";
import { countersFromReply, type RateWindows } from "./rate-windows.js";
import type { WindowCounter } from "./start-schedule.js";
import { newTaskId } from "./task-id.js";

export interface Submission {
  readonly userId: string;
  readonly payload: Uint8Array;
  readonly kind: string;
  readonly idempotencyKey: string;
  readonly rejectOverLimit: boolean;
}

/** What admit decided, with the user's windows as they were after it. */
export type Admission =
  | { readonly outcome: "started"; readonly taskId: string; readonly now: number; readonly windows: WindowCounter[] }
  | {
      readonly outcome: "queued";
      readonly taskId: string;
      readonly position: number;
      readonly now: number;
      readonly windows: WindowCounter[];
    }
  | { readonly outcome: "duplicate"; readonly taskId: string; readonly now: number }
  | {
      readonly outcome: "over-limit" | "backlog-full";
      readonly queued: number;
      readonly now: number;
      readonly windows: WindowCounter[];
    };

export type TaskStateName = "queued" | "running" | "succeeded" | "failed" | "dead";

export interface TaskRecord {
  readonly taskId: string;
  readonly userId: string;
  readonly kind: string;
  readonly payload: Buffer;
  readonly state: TaskStateName;
  readonly attempts: number;
  readonly submittedAt: number;
  readonly startedAt: number | undefined;
  readonly finishedAt: number | undefined;
  readonly lastError: string;
}

export interface TaskQueueOptions {
  readonly maxBacklog: number;
  readonly leaseMs: number;
  readonly idempotencyTtlSeconds: number;
  readonly retentionSeconds: number;
}

const STATE_NAMES: Readonly<Record<string, TaskStateName>> = {
  q: "queued",
  r: "running",
  ok: "succeeded",
  f: "failed",
  d: "dead",
};

const scripts = {
  admit: new LuaScript("admit-n.lua"),
  finish: new LuaScript("finish-2.lua"),
};

/** The per-user queues, task records and leases in Redis. */
export class TaskQueue {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly windows: RateWindows,
    private readonly options: TaskQueueOptions,
  ) {}

  /** Decides start-now, queue or reject for one task and stores it: one round trip. */
  async admit(submission: Submission): Promise<Admission> {
    const { userId } = submission;
    const taskId = newTaskId();
    const keys = [
      this.keys.queue(userId),
      this.keys.dueUsers,
      this.keys.task(taskId),
      this.keys.idempotency(userId, submission.idempotencyKey),
      this.keys.leases,
      ...this.windows.keysFor(userId),
    ];
    const args = [
      taskId,
      userId,
      Buffer.from(submission.payload.buffer, submission.payload.byteOffset, submission.payload.byteLength),
      submission.idempotencyKey,
      submission.kind,
      submission.rejectOverLimit ? "reject" : "queue",
      this.options.maxBacklog,
      this.options.idempotencyTtlSeconds,
      this.options.leaseMs,
      ...this.windows.scriptArgs(),
    ];
    const reply = (await scripts.admit.run(this.redis, keys, args)) as unknown[];
    const [outcome, id, n, nowValue] = reply;
    const now = Number(nowValue);
    const windows = countersFromReply(reply.slice(4), now);
    switch (Number(outcome)) {
      case 1:
        return { outcome: "started", taskId: String(id), now, windows };
      case 2:
        return { outcome: "queued", taskId: String(id), position: Number(n), now, windows };
      case 3:
        return { outcome: "duplicate", taskId: String(id), now };
      case 4:
        return { outcome: "over-limit", queued: Number(n), now, windows };
      case 5:
        return { outcome: "backlog-full", queued: Number(n), now, windows };
      default:
        throw new Error(`admit script replied with unknown outcome ${String(outcome)}`);
    }
  }

  /** Records the end of a running task and releases its lease. */
  async finish(taskId: string, result: { ok: true } | { ok: false; error: string }): Promise<boolean> {
    const replied = await scripts.finish.run(
      this.redis,
      [this.keys.task(taskId), this.keys.leases],
      [taskId, result.ok ? "ok" : "dead", this.options.retentionSeconds, result.ok ? "" : result.error],
    );
    return Number(replied) === 1;
  }

  async getTask(taskId: string): Promise<TaskRecord | undefined> {
    const fields = await this.redis.hgetallBuffer(this.keys.task(taskId));
    if (!fields || Object.keys(fields).length === 0) return undefined;
    const text = (name: string): string => fields[name]?.toString("utf8") ?? "";
    const time = (name: string): number | undefined => (fields[name] ? Number(text(name)) : undefined);
    return {
      taskId,
      userId: text("u"),
      kind: text("k"),
      payload: fields.p ?? Buffer.alloc(0),
      state: STATE_NAMES[text("s")] ?? "queued",
      attempts: Number(text("a") || "0"),
      submittedAt: time("sub") ?? 0,
      startedAt: time("st"),
      finishedAt: time("fin"),
      lastError: text("err"),
    };
  }

  /** The ids in a user's queue, head first (for inspection and tests). */
  async queuedTaskIds(userId: string): Promise<string[]> {
    return this.redis.lrange(this.keys.queue(userId), 0, -1);
  }
}
