import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { sendUnaryData, ServerDuplexStream, ServerUnaryCall, UntypedServiceImplementation } from "@grpc/grpc-js";
import { callContextOf } from "./call-context.js";
import { reportFailure } from "./status.js";
import type { Logger } from "../logger.js";
import type { Clock } from "../core/clock.js";
import { authorizeListWorkers, authorizeWorker } from "../core/authorization.js";
import type { RemoteWorkers, WorkerConnection } from "../core/remote-workers.js";
import { malformedRequest, unavailable } from "../core/service-error.js";
import { checkWorkerHello } from "../core/validation.js";
import type { ListedWorker } from "../core/worker-directory.js";
import {
  ListWorkersResponseSchema,
  WorkResponseSchema,
  WorkerInfoSchema,
  type ListWorkersRequest,
  type ListWorkersResponse,
  type WorkRequest,
  type WorkResponse,
} from "../../gen/ts/tollgate/v1/worker_service_pb.js";

export interface WorkerServiceOptions {
  readonly workers: RemoteWorkers;
  /** Every host's workers (ListWorkers). */
  readonly listWorkers: () => Promise<ListedWorker[]>;
  readonly logger: Logger;
  readonly clock: Clock;
  /** Silence this long ends a session; heartbeats are asked for every third of it. */
  readonly leaseMs: number;
  readonly attemptTimeoutMs: number;
}

export interface WorkerServiceImplementation {
  readonly implementation: UntypedServiceImplementation;
  /** Ends every open session (after RemoteWorkers.close handed their tasks back). */
  endAll(): void;
}

/**
 * WorkerService over grpc-js: each Work stream is one session of the core's
 * RemoteWorkers, which decides what to send; this file only carries messages
 * and watches the stream's liveness (its end, or silence past the lease).
 */
export function workerServiceImplementation(options: WorkerServiceOptions): WorkerServiceImplementation {
  const open = new Set<() => void>();
  const work = (call: ServerDuplexStream<WorkRequest, WorkResponse>): void => {
    let connection: WorkerConnection | undefined;
    let connecting = false;
    let ended = false;
    let lastHeard = options.clock.now();
    let cancelWatch: (() => void) | undefined;
    const end = (finish: () => void, reason: string): void => {
      if (ended) return;
      ended = true;
      open.delete(endNow);
      cancelWatch?.();
      connection?.disconnect(reason);
      finish();
    };
    const fail = (error: unknown): void => {
      const status = reportFailure(options.logger, error, { method: "WorkerService/Work" });
      end(() => call.emit("error", status), status.details ?? "failed");
    };
    const endNow = (): void => fail(unavailable("server stopping; the worker should reconnect"));
    open.add(endNow);
    const send = (message: Parameters<typeof create<typeof WorkResponseSchema>>[1]): void => {
      if (!ended) call.write(create(WorkResponseSchema, message));
    };
    const watch = (): void => {
      cancelWatch = options.clock.setTimer(() => {
        const silentMs = options.clock.now() - lastHeard;
        if (silentMs >= options.leaseMs) {
          fail(unavailable(`no message from the worker for ${silentMs} ms; its tasks were handed back`));
        } else {
          watch();
        }
      }, options.leaseMs / 3);
    };

    try {
      authorizeWorker(callContextOf(call).caller);
    } catch (error) {
      fail(error);
      return;
    }
    call.on("data", (request: WorkRequest) => {
      if (ended) return;
      lastHeard = options.clock.now();
      const message = request.message;
      try {
        switch (message.case) {
          case "hello": {
            if (connection || connecting) throw malformedRequest("hello is the first message only");
            const hello = {
              kinds: message.value.kinds,
              concurrency: message.value.concurrency,
              name: message.value.name,
            };
            checkWorkerHello(hello);
            connecting = true;
            options.workers
              .connect(hello, {
                assign: ({ taskId, userId, kind, payload, attempt }) =>
                  send({ message: { case: "task", value: { taskId, userId, kind, payload, attempt } } }),
                cancel: (task, reason) =>
                  send({ message: { case: "cancel", value: { taskId: task.taskId, attempt: task.attempt, reason } } }),
              })
              .then((opened) => {
                connection = opened;
                if (ended) {
                  opened.disconnect("the stream ended while connecting");
                  return;
                }
                send({
                  message: {
                    case: "welcome",
                    value: {
                      workerId: opened.id,
                      heartbeatIntervalMs: Math.floor(options.leaseMs / 3),
                      leaseMs: options.leaseMs,
                      attemptTimeoutMs: options.attemptTimeoutMs,
                    },
                  },
                });
              }, fail);
            watch();
            return;
          }
          case "result": {
            if (!connection) throw malformedRequest("a result before the welcome: send hello first and wait for it");
            const { taskId, attempt, outcome } = message.value;
            if (outcome.case === undefined) throw malformedRequest("result: set completed or failed");
            const known = connection.answer(
              taskId,
              attempt,
              outcome.case === "completed"
                ? { ok: true }
                : { ok: false, error: outcome.value.error || "failed", doNotRetry: outcome.value.doNotRetry },
            );
            // After a hand-back (a timeout, the stream's own restart) the
            // answer is late, not wrong: nothing to do with it.
            if (!known) options.logger.debug({ taskId, attempt }, "a worker answered a task it no longer holds");
            return;
          }
          case "heartbeat":
            if (!connection && !connecting) throw malformedRequest("send hello first");
            return;
          default:
            throw malformedRequest("an empty WorkRequest: set hello, result or heartbeat");
        }
      } catch (error) {
        fail(error);
      }
    });
    call.on("end", () => end(() => call.end(), "the worker ended its stream"));
    call.on("cancelled", () => end(() => {}, "the stream was cancelled (the worker went away)"));
    call.on("error", () => end(() => {}, "the stream failed"));
  };

  const listWorkers = (
    call: ServerUnaryCall<ListWorkersRequest, ListWorkersResponse>,
    callback: sendUnaryData<ListWorkersResponse>,
  ): void => {
    (async () => {
      authorizeListWorkers(callContextOf(call).caller);
      const workers = await options.listWorkers();
      return create(ListWorkersResponseSchema, {
        workers: workers.map((worker) =>
          create(WorkerInfoSchema, {
            workerId: worker.id,
            name: worker.name,
            kinds: [...worker.kinds],
            concurrency: worker.concurrency,
            inFlight: worker.inFlight,
            server: worker.server,
            connectedAt: timestampFromMs(worker.connectedAt),
          }),
        ),
      });
    })().then(
      (response) => callback(null, response),
      (error: unknown) => callback(reportFailure(options.logger, error, { method: "ListWorkers" })),
    );
  };

  return {
    implementation: { work, listWorkers },
    endAll: () => {
      for (const endNow of [...open]) endNow();
    },
  };
}
