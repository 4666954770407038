import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  status as Status,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerWritableStream,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { ServiceError, reportFailure } from "./status.js";
import type { Logger } from "../logger.js";
import type { ProgressHub } from "../core/progress-hub.js";
import { serveWatchQueue } from "./watch-queue.js";
import type { RatePolicy } from "../core/rate-policy.js";
import { admissionOf, callerOf, mayActFor } from "./rate-limit-interceptor.js";
import { nthStartTime, type WindowCounter } from "../core/start-schedule.js";
import type { TaskStore, TaskRecord, TaskStateName } from "../core/store.js";
import {
  Disposition,
  GetTaskResponseSchema,
  SubmitResponseSchema,
  TaskSchema,
  TaskState,
  WindowStateSchema,
  type GetTaskRequest,
  type GetTaskResponse,
  type SubmitRequest,
  type SubmitResponse,
  type WatchQueueRequest,
  type WatchQueueResponse,
} from "../../gen/ts/tollgate/v1/task_service_pb.js";

export interface TaskServiceOptions {
  readonly queue: TaskStore;
  readonly policy: RatePolicy;
  readonly logger: Logger;
  readonly maxAttempts: number;
  readonly hub: ProgressHub;
}

/** TaskService's handlers; the interceptor has validated and admitted the request. */
export function taskServiceImplementation(options: TaskServiceOptions): UntypedServiceImplementation {
  return {
    submit: unary<SubmitRequest, SubmitResponse>(options.logger, async (request) => submit(request, options)),
    getTask: unary<GetTaskRequest, GetTaskResponse>(options.logger, async (request) => getTask(request, options)),
    watchQueue: (call: ServerWritableStream<WatchQueueRequest, WatchQueueResponse>) => {
      void serveWatchQueue(call, options.hub, options.policy, options.logger);
    },
  };
}

function unary<Req, Res>(logger: Logger, handle: (request: Req) => Promise<Res>) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    handle(call.request).then(
      (response) => callback(null, response),
      (error: unknown) => {
        callback(reportFailure(logger, error, { method: call.getPath() }), null);
      },
    );
  };
}

function submit(request: SubmitRequest, { policy }: TaskServiceOptions): SubmitResponse {
  const admission = admissionOf(request);
  switch (admission.outcome) {
    case "started":
      return create(SubmitResponseSchema, {
        taskId: admission.taskId,
        disposition: Disposition.STARTED,
        estimatedStart: timestampFromMs(admission.now),
        windows: windowStates(policy, admission.windows),
      });
    case "queued":
      return create(SubmitResponseSchema, {
        taskId: admission.taskId,
        disposition: Disposition.QUEUED,
        queuePosition: admission.position,
        estimatedStart: timestampFromMs(nthStartTime(policy, admission.windows, admission.now, admission.position)),
        windows: windowStates(policy, admission.windows),
      });
    case "duplicate":
      return create(SubmitResponseSchema, { taskId: admission.taskId, disposition: Disposition.DUPLICATE });
    default:
      throw new Error(`Submit handler got a refused admission (${admission.outcome})`);
  }
}

function windowStates(policy: RatePolicy, counters: readonly WindowCounter[]) {
  return policy.map((window, i) => {
    const counter = counters[i] ?? { count: 0, resetAt: null };
    return create(WindowStateSchema, {
      limit: window.limit,
      duration: durationFromMs(window.durationMs),
      remaining: Math.max(0, window.limit - counter.count),
      resetTime: counter.resetAt === null ? undefined : timestampFromMs(counter.resetAt),
    });
  });
}

const TASK_STATES: Readonly<Record<TaskStateName, TaskState>> = {
  queued: TaskState.QUEUED,
  running: TaskState.RUNNING,
  succeeded: TaskState.SUCCEEDED,
  failed: TaskState.FAILED,
  dead: TaskState.DEAD,
};

async function getTask(request: GetTaskRequest, { queue, maxAttempts }: TaskServiceOptions): Promise<GetTaskResponse> {
  const record = await queue.getTask(request.taskId);
  if (!record) {
    throw new ServiceError(Status.NOT_FOUND, `no task ${request.taskId} (finished tasks are kept for a day)`);
  }
  const caller = callerOf(request);
  if (!mayActFor(caller, record.userId)) {
    throw new ServiceError(Status.PERMISSION_DENIED, "this API key may read only its own user's tasks");
  }
  return create(GetTaskResponseSchema, { task: taskMessage(record, maxAttempts) });
}

function taskMessage(record: TaskRecord, maxAttempts: number) {
  const finished = record.state === "succeeded" || record.state === "dead";
  return create(TaskSchema, {
    taskId: record.taskId,
    userId: record.userId,
    kind: record.kind,
    state: TASK_STATES[record.state],
    attempts: record.attempts,
    attemptsLeft: finished ? 0 : Math.max(0, maxAttempts - record.attempts),
    submittedAt: timestampFromMs(record.submittedAt),
    startedAt: record.startedAt === undefined ? undefined : timestampFromMs(record.startedAt),
    finishedAt: record.finishedAt === undefined ? undefined : timestampFromMs(record.finishedAt),
    lastError: record.lastError,
  });
}
