import type { MessageInitShape } from "@bufbuild/protobuf";
import { ConnectError, type Client } from "@connectrpc/connect";
import { isDoNotRetry } from "./do-not-retry.js";
import type { HandlerPool } from "./handler-pool.js";
import { MessageQueue } from "./message-queue.js";
import type {
  TaskAssignment,
  TaskCancel,
  WorkRequestSchema,
  WorkResponse,
  WorkerService,
  WorkerWelcome,
} from "../../gen/ts/tollgate/v1/worker_service_pb.js";

/** One attempt at one task, as a worker's handler sees it. */
export interface WorkerTask {
  readonly taskId: string;
  readonly userId: string;
  readonly kind: string;
  readonly payload: Uint8Array;
  /** 1 for the first attempt. */
  readonly attempt: number;
}

/**
 * Runs one attempt. Returning completes it; throwing fails it (retried while
 * attempts remain) with the error's message, and a DoNotRetryError (or any
 * error with `doNotRetry: true`) dead-letters it at once. `signal` aborts when
 * the server cancels the attempt (CancelTask, its timeout), when the stream
 * to the server is lost, or when the worker stops past its grace.
 */
export type WorkerHandler = (task: WorkerTask, context: { readonly signal: AbortSignal }) => Promise<void> | void;

/** What a session needs of the worker's options. */
export interface SessionOptions {
  readonly kinds: readonly string[];
  readonly concurrency: number;
  readonly name?: string;
  readonly handler: WorkerHandler;
  readonly onWelcome: (welcome: WorkerWelcome) => void;
}

/** How a session's stream ended: welcomed or not, and the error (none when the server ended it with OK). */
export interface SessionEnd {
  readonly welcome: WorkerWelcome | undefined;
  readonly error: ConnectError | undefined;
}

type WorkRequestInit = MessageInitShape<typeof WorkRequestSchema>;

interface Running {
  readonly controller: AbortController;
  /** Set by a TaskCancel: the attempt is answered failed with this, however its handler ends. */
  cancelReason: string | undefined;
}

/** Used when a welcome names no heartbeat interval. */
const DEFAULT_HEARTBEAT_MS = 10_000;
/** However short an interval the server names, no busier than this. */
const MIN_HEARTBEAT_MS = 25;
/** After half-closing on stop, how long the server has to end the stream before it is cancelled. */
const CLOSE_TIMEOUT_MS = 5_000;
/** TaskFailed.error is for people; a handler's error can be any size. */
const MAX_ERROR_CHARS = 1_000;

/**
 * One Work stream: the hello, then assignments run through the handler (in
 * the worker's HandlerPool, queued here while it is full), each answered with
 * a result; heartbeats twice per the welcome's interval; cancels abort their
 * attempt. When the stream ends, everything unanswered is the server's to
 * hand back: waiting assignments are dropped, running handlers are aborted
 * and their results never sent.
 */
export class WorkerSession {
  readonly #client: Client<typeof WorkerService>;
  readonly #options: SessionOptions;
  readonly #pool: HandlerPool;
  readonly #outbox = new MessageQueue<WorkRequestInit>();
  readonly #call = new AbortController();
  /** Assigned but not started: the pool was full. */
  readonly #waiting: TaskAssignment[] = [];
  readonly #running = new Map<string, Running>();
  /** False once stopping or ended: assignments are neither started nor answered. */
  #accepting = true;
  /** False once results can no longer reach the server (or must not: abandoned on stop). */
  #answering = true;
  #heartbeat: NodeJS.Timeout | undefined;
  #welcome: WorkerWelcome | undefined;
  #ended: Promise<SessionEnd> | undefined;

  constructor(client: Client<typeof WorkerService>, options: SessionOptions, pool: HandlerPool) {
    this.#client = client;
    this.#options = options;
    this.#pool = pool;
  }

  /** Opens the stream and serves it; resolves (never rejects) when it ends. */
  run(): Promise<SessionEnd> {
    this.#ended ??= this.#serve();
    return this.#ended;
  }

  async #serve(): Promise<SessionEnd> {
    const { kinds, concurrency, name = "" } = this.#options;
    this.#outbox.push({ message: { case: "hello", value: { kinds: [...kinds], concurrency, name } } });
    try {
      for await (const response of this.#client.work(this.#outbox, { signal: this.#call.signal })) {
        this.#receive(response);
      }
      return { welcome: this.#welcome, error: undefined };
    } catch (error) {
      return { welcome: this.#welcome, error: ConnectError.from(error) };
    } finally {
      this.#end();
    }
  }

  /**
   * Stops gracefully: no new starts (waiting assignments are dropped), the
   * running handlers get until `deadlineMs` and their results are sent, then
   * the rest are aborted unanswered and the stream is half-closed, so the
   * server reads every result before the end. The server then ends the stream;
   * if it has not within CLOSE_TIMEOUT_MS, it is cancelled.
   */
  async drain(deadlineMs: number): Promise<void> {
    this.#accepting = false;
    this.#waiting.length = 0;
    await this.#pool.idle(deadlineMs);
    this.#answering = false;
    this.#pool.abortAll(new Error("the worker is stopping: the task goes back to its queue"));
    this.#outbox.end();
    const cancel = setTimeout(() => this.#call.abort(), CLOSE_TIMEOUT_MS);
    await this.run();
    clearTimeout(cancel);
  }

  /** Starts waiting assignments while the pool has room (called again each time a slot frees). */
  pump(): void {
    while (this.#accepting && this.#pool.free > 0) {
      const task = this.#waiting.shift();
      if (task === undefined) return;
      this.#start(task);
    }
  }

  #receive(response: WorkResponse): void {
    const { message } = response;
    switch (message.case) {
      case "welcome":
        this.#welcome = message.value;
        this.#startHeartbeats(message.value.heartbeatIntervalMs);
        this.#options.onWelcome(message.value);
        return;
      case "task":
        if (!this.#accepting) return; // stopping: unanswered, it goes back to its queue when the stream ends
        if (this.#running.has(keyOf(message.value)) || this.#waiting.some((task) => sameAttempt(task, message.value)))
          return; // the same attempt twice: run and answer it once
        this.#waiting.push(message.value);
        this.pump();
        return;
      case "cancel":
        this.#cancel(message.value);
        return;
      default:
        return; // a message this client does not know yet: ignored, as proto3 would
    }
  }

  #start(assignment: TaskAssignment): void {
    const { taskId, userId, kind, payload, attempt } = assignment;
    const key = keyOf(assignment);
    const running: Running = { controller: new AbortController(), cancelReason: undefined };
    this.#running.set(key, running);
    this.#pool.run(running.controller, async () => {
      let failure: { error: string; doNotRetry: boolean } | undefined;
      try {
        await this.#options.handler({ taskId, userId, kind, payload, attempt }, { signal: running.controller.signal });
      } catch (error) {
        failure = { error: messageOf(error), doNotRetry: isDoNotRetry(error) };
      }
      this.#running.delete(key);
      // A cancelled attempt fails with the server's reason, whatever its handler did.
      if (running.cancelReason !== undefined) failure = { error: running.cancelReason, doNotRetry: false };
      this.#send({
        message: {
          case: "result",
          value: {
            taskId,
            attempt,
            outcome: failure === undefined ? { case: "completed", value: {} } : { case: "failed", value: failure },
          },
        },
      });
    });
  }

  #cancel(cancel: TaskCancel): void {
    const reason = cancel.reason || "cancelled by the server";
    const running = this.#running.get(keyOf(cancel));
    if (running !== undefined) {
      running.cancelReason = reason;
      running.controller.abort(new Error(reason));
      return;
    }
    const index = this.#waiting.findIndex((task) => sameAttempt(task, cancel));
    if (index < 0) return; // already answered, or never assigned here
    this.#waiting.splice(index, 1);
    this.#send({
      message: {
        case: "result",
        value: {
          taskId: cancel.taskId,
          attempt: cancel.attempt,
          outcome: { case: "failed", value: { error: reason } },
        },
      },
    });
  }

  #send(request: WorkRequestInit): void {
    if (this.#answering) this.#outbox.push(request);
  }

  #startHeartbeats(intervalMs: number): void {
    clearInterval(this.#heartbeat);
    // Twice per interval, so that a late timer or a slow network never makes the server wait longer
    // than it asked. Sent whatever else was sent: simpler than tracking, and a heartbeat is a few bytes.
    const everyMs = Math.max(MIN_HEARTBEAT_MS, (intervalMs > 0 ? intervalMs : DEFAULT_HEARTBEAT_MS) / 2);
    this.#heartbeat = setInterval(() => this.#outbox.push({ message: { case: "heartbeat", value: {} } }), everyMs);
  }

  /** The stream is over: nothing unanswered can be answered on another one. */
  #end(): void {
    this.#accepting = false;
    this.#answering = false;
    clearInterval(this.#heartbeat);
    this.#waiting.length = 0;
    for (const running of this.#running.values()) {
      running.controller.abort(new Error("the stream to the server ended: the task goes back to its queue"));
    }
    this.#outbox.end();
  }
}

function keyOf(task: { readonly taskId: string; readonly attempt: number }): string {
  return `${task.taskId}#${task.attempt}`;
}

function sameAttempt(a: TaskAssignment, b: { readonly taskId: string; readonly attempt: number }): boolean {
  return a.taskId === b.taskId && a.attempt === b.attempt;
}

/** A thrown value as TaskFailed.error: an Error's message (its name if empty), anything else as text. */
function messageOf(error: unknown): string {
  const text = error instanceof Error ? error.message || error.name : String(error);
  return text.length > MAX_ERROR_CHARS ? `${text.slice(0, MAX_ERROR_CHARS - 1)}…` : text;
}
