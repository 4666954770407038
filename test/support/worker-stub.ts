// A stub WorkerService on a free port, in this process (grpc-js, the
// service definition the server builds from the same descriptors): the test
// plays the server, sending welcomes, assignments and cancels and ending
// streams with any status, and sees every message a worker sent. No Redis,
// no tollgate serve.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Server, ServerCredentials, type Metadata, type ServerDuplexStream, type status } from "@grpc/grpc-js";
import { pollUntil } from "./expect.js";
import { grpcServiceDefinition } from "../../src/grpc/service-definition.js";
import {
  WorkResponseSchema,
  WorkerService,
  type TaskAssignmentSchema,
  type TaskResult,
  type WorkRequest,
  type WorkerHello,
} from "../../gen/ts/tollgate/v1/worker_service_pb.js";

export interface StubOptions {
  /** The welcome's heartbeat interval (default 10 s: no heartbeats in a short test unless asked). */
  readonly heartbeatIntervalMs?: number;
  /** Refuse each hello with this status instead of welcoming it. */
  readonly refuse?: { readonly code: status; readonly details: string };
  /** End a stream (OK) when its worker half-closes, as the server does (default true). */
  readonly endOnHalfClose?: boolean;
  /** Listen on this port (a restarted server) instead of a free one. */
  readonly port?: number;
}

/** One Work stream as the stub sees it. */
export class StubSession {
  /** Every message the worker sent, in order. */
  readonly received: WorkRequest[] = [];
  /** The worker half-closed its side (it is stopping). */
  halfClosed = false;
  /** The call is over (ended by either side). */
  closed = false;

  constructor(
    readonly metadata: Metadata,
    private readonly call: ServerDuplexStream<WorkRequest, unknown>,
  ) {}

  get hello(): WorkerHello | undefined {
    const first = this.received[0]?.message;
    return first?.case === "hello" ? first.value : undefined;
  }

  get results(): TaskResult[] {
    return this.received.flatMap((request) => (request.message.case === "result" ? [request.message.value] : []));
  }

  get heartbeats(): number {
    return this.received.filter((request) => request.message.case === "heartbeat").length;
  }

  send(response: MessageInitShape<typeof WorkResponseSchema>): void {
    this.call.write(create(WorkResponseSchema, response));
  }

  assign(task: MessageInitShape<typeof TaskAssignmentSchema>): void {
    this.send({ message: { case: "task", value: { attempt: 1, ...task } } });
  }

  cancel(taskId: string, attempt: number, reason: string): void {
    this.send({ message: { case: "cancel", value: { taskId, attempt, reason } } });
  }

  /** Ends the stream with a status, as a server restart (UNAVAILABLE) or a refusal would. */
  fail(code: status, details: string): void {
    this.call.emit("error", { code, details });
  }

  /** The result for one task, once it arrives. */
  result(taskId: string, timeoutMs = 15_000): Promise<TaskResult> {
    return pollUntil(`the result of ${taskId}`, () => this.results.find((result) => result.taskId === taskId), {
      timeoutMs,
    });
  }
}

export class WorkerStub {
  readonly sessions: StubSession[] = [];
  readonly #server = new Server();
  #port = 0;

  static async start(options: StubOptions = {}): Promise<WorkerStub> {
    const stub = new WorkerStub();
    const { sessions } = stub;
    stub.#server.addService(grpcServiceDefinition(WorkerService), {
      work: (call: ServerDuplexStream<WorkRequest, unknown>) => {
        const session = new StubSession(call.metadata, call);
        sessions.push(session);
        call.on("data", (request: WorkRequest) => {
          session.received.push(request);
          if (request.message.case !== "hello") return;
          if (options.refuse) return session.fail(options.refuse.code, options.refuse.details);
          session.send({
            message: {
              case: "welcome",
              value: {
                workerId: `stub-${sessions.length}`,
                heartbeatIntervalMs: options.heartbeatIntervalMs ?? 10_000,
                leaseMs: 30_000,
                attemptTimeoutMs: 60_000,
              },
            },
          });
        });
        // What the server does when a worker half-closes: it ends the stream too.
        call.on("end", () => {
          session.halfClosed = true;
          if (!session.closed && options.endOnHalfClose !== false) call.end();
        });
        call.on("close", () => {
          session.closed = true;
        });
        call.on("cancelled", () => {
          session.closed = true;
        });
        call.on("error", () => {});
      },
    });
    stub.#port = await new Promise<number>((resolve, reject) =>
      stub.#server.bindAsync(`127.0.0.1:${options.port ?? 0}`, ServerCredentials.createInsecure(), (error, bound) =>
        error ? reject(error) : resolve(bound),
      ),
    );
    return stub;
  }

  get port(): number {
    return this.#port;
  }

  get addr(): string {
    return `127.0.0.1:${this.port}`;
  }

  get baseUrl(): string {
    return `http://${this.addr}`;
  }

  /** The `index`th stream opened (0 for the first), once a worker has opened it and said hello. */
  session(index: number, timeoutMs = 15_000): Promise<StubSession> {
    return pollUntil(
      `a worker's stream #${index + 1} and its hello`,
      () => {
        const session = this.sessions[index];
        return session?.hello !== undefined ? session : undefined;
      },
      { timeoutMs },
    );
  }

  close(): void {
    this.#server.forceShutdown();
  }
}
