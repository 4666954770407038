// A WorkerService worker at the protocol's level, for tests that need to see
// or bend the protocol itself (hold answers, stop heartbeating, count what
// is in flight): the generated Connect client over gRPC, nothing else.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { createClient, type Client } from "@connectrpc/connect";
import { createTransport } from "../../src/client/client.js";
import {
  WorkRequestSchema,
  WorkerService,
  type TaskAssignment,
  type TaskCancel,
  type WorkRequest,
  type WorkerWelcome,
} from "../../gen/ts/tollgate/v1/worker_service_pb.js";

type Outcome = { readonly ok: true } | { readonly ok: false; readonly error: string; readonly doNotRetry?: boolean };

export interface RawWorkerOptions {
  readonly kinds: readonly string[];
  readonly concurrency: number;
  readonly apiKey?: string;
  readonly name?: string;
  /**
   * What to do with a task: an outcome to answer at once, a promise of one,
   * or "hold" to answer later with answer() (or never).
   */
  readonly run?: (task: TaskAssignment) => Outcome | Promise<Outcome> | "hold";
  /** Send heartbeats at the welcome's interval (default true). */
  readonly heartbeat?: boolean;
}

/** A queue of requests the stream reads from. */
class Outbox implements AsyncIterable<WorkRequest> {
  private readonly items: WorkRequest[] = [];
  private wake: (() => void) | undefined;
  private ended = false;
  push(message: MessageInitShape<typeof WorkRequestSchema>): void {
    this.items.push(create(WorkRequestSchema, message));
    this.wake?.();
  }
  end(): void {
    this.ended = true;
    this.wake?.();
  }
  async *[Symbol.asyncIterator](): AsyncIterator<WorkRequest> {
    for (;;) {
      const next = this.items.shift();
      if (next) {
        yield next;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}

export class RawWorker {
  readonly received: TaskAssignment[] = [];
  readonly cancels: TaskCancel[] = [];
  /** By "taskId:attempt": assignments not answered yet. */
  readonly inFlight = new Map<string, TaskAssignment>();
  maxInFlight = 0;
  welcome: WorkerWelcome | undefined;
  /** Settles when the stream ends: undefined, or the error it ended with. */
  readonly ended: Promise<unknown>;
  private readonly outbox = new Outbox();
  private readonly abort = new AbortController();
  private heartbeats: NodeJS.Timeout | undefined;

  constructor(
    address: string,
    private readonly options: RawWorkerOptions,
  ) {
    const client: Client<typeof WorkerService> = createClient(
      WorkerService,
      createTransport({ baseUrl: address, ...(options.apiKey ? { apiKey: options.apiKey } : {}) }),
    );
    this.outbox.push({
      message: {
        case: "hello",
        value: { kinds: [...options.kinds], concurrency: options.concurrency, name: options.name ?? "raw" },
      },
    });
    this.ended = this.read(client.work(this.outbox, { signal: this.abort.signal }));
  }

  private async read(
    responses: AsyncIterable<{ message: { case: string | undefined; value?: unknown } }>,
  ): Promise<unknown> {
    try {
      for await (const response of responses) {
        const { message } = response;
        if (message.case === "welcome") {
          this.welcome = message.value as WorkerWelcome;
          if (this.options.heartbeat !== false) {
            this.heartbeats = setInterval(
              () => this.outbox.push({ message: { case: "heartbeat", value: {} } }),
              this.welcome.heartbeatIntervalMs,
            );
          }
        } else if (message.case === "cancel") {
          this.cancels.push(message.value as TaskCancel);
        } else if (message.case === "task") {
          this.take(message.value as TaskAssignment);
        }
      }
      return undefined;
    } catch (error) {
      return error;
    } finally {
      clearInterval(this.heartbeats);
    }
  }

  private take(task: TaskAssignment): void {
    this.received.push(task);
    this.inFlight.set(`${task.taskId}:${task.attempt}`, task);
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight.size);
    const outcome = this.options.run?.(task) ?? { ok: true };
    if (outcome === "hold") return;
    void Promise.resolve(outcome).then((settled) => this.answer(task, settled));
  }

  /** Answers one assignment. */
  answer(task: { readonly taskId: string; readonly attempt: number }, outcome: Outcome): void {
    this.inFlight.delete(`${task.taskId}:${task.attempt}`);
    this.outbox.push({
      message: {
        case: "result",
        value: {
          taskId: task.taskId,
          attempt: task.attempt,
          outcome: outcome.ok
            ? { case: "completed", value: {} }
            : { case: "failed", value: { error: outcome.error, doNotRetry: outcome.doNotRetry ?? false } },
        },
      },
    });
  }

  /** Sends any message (tests of what the server refuses). */
  send(message: MessageInitShape<typeof WorkRequestSchema>): void {
    this.outbox.push(message);
  }

  /** Ends the stream as a worker that stops does. */
  async close(): Promise<void> {
    clearInterval(this.heartbeats);
    this.outbox.end();
    await this.ended;
  }

  /** Drops the stream as a worker that dies does. */
  async kill(): Promise<void> {
    clearInterval(this.heartbeats);
    this.abort.abort();
    await this.ended;
  }
}
