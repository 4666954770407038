import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { sendUnaryData, ServerUnaryCall, ServerWritableStream, UntypedServiceImplementation } from "@grpc/grpc-js";
import { callContextOf } from "./call-context.js";
import { reportFailure } from "./status.js";
import type { Logger } from "../logger.js";
import type { ProgressHub } from "../core/progress-hub.js";
import { serveWatchQueue } from "./watch-queue.js";
import type { RatePolicy } from "../core/rate-policy.js";
import { readTask } from "../core/reads.js";
import { checkListTasks, listTasks } from "../core/list-tasks.js";
import { listTasksRequest } from "./list-tasks.js";
import { checkListQueues, listQueues } from "../core/list-queues.js";
import { cancelTask, purgeQueue } from "../core/cancel.js";
import { changeDeadLetters, checkDeadLetters } from "../core/dead-letters.js";
import { setQueuePaused } from "../core/pause.js";
import type { ListedTask, TaskStore, TaskRecord, TaskStateName } from "../core/store.js";
import type { SubmitDecision, WindowState } from "../core/submit.js";
import {
  CancelTaskResponseSchema,
  Disposition,
  GetTaskResponseSchema,
  PauseQueueResponseSchema,
  PurgeQueueResponseSchema,
  ResumeQueueResponseSchema,
  ListTasksResponseSchema,
  ListQueuesResponseSchema,
  QueueSummarySchema,
  PurgeDeadLettersResponseSchema,
  RequeueDeadLettersResponseSchema,
  SubmitResponseSchema,
  TaskSchema,
  TaskState,
  WindowStateSchema,
  type CancelTaskRequest,
  type CancelTaskResponse,
  type GetTaskRequest,
  type GetTaskResponse,
  type ListTasksRequest,
  type ListTasksResponse,
  type ListQueuesRequest,
  type ListQueuesResponse,
  type PauseQueueRequest,
  type PauseQueueResponse,
  type PurgeQueueRequest,
  type PurgeQueueResponse,
  type PurgeDeadLettersRequest,
  type PurgeDeadLettersResponse,
  type RequeueDeadLettersRequest,
  type RequeueDeadLettersResponse,
  type ResumeQueueRequest,
  type ResumeQueueResponse,
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

/** TaskService's handlers; the interceptor has identified the caller and checked (for Submit: decided) the request. */
export function taskServiceImplementation(options: TaskServiceOptions): UntypedServiceImplementation {
  return {
    submit: unary<SubmitRequest, SubmitResponse>(options.logger, async (call) => submitResponse(decisionOf(call))),
    getTask: unary<GetTaskRequest, GetTaskResponse>(options.logger, async (call) => getTask(call, options)),
    listTasks: unary<ListTasksRequest, ListTasksResponse>(options.logger, async (call) => listTaskPage(call, options)),
    cancelTask: unary<CancelTaskRequest, CancelTaskResponse>(options.logger, async (call) => cancel(call, options)),
    purgeQueue: unary<PurgeQueueRequest, PurgeQueueResponse>(options.logger, async (call) =>
      create(PurgeQueueResponseSchema, { cancelled: await purgeQueue(options.queue, call.request.userId) }),
    ),
    requeueDeadLetters: unary<RequeueDeadLettersRequest, RequeueDeadLettersResponse>(options.logger, async (call) => {
      const query = checkDeadLetters(callContextOf(call).caller, "requeue", call.request);
      const result = await changeDeadLetters(options.queue, "requeue", query);
      return create(RequeueDeadLettersResponseSchema, { requeued: result.done, notFound: [...result.notFound] });
    }),
    purgeDeadLetters: unary<PurgeDeadLettersRequest, PurgeDeadLettersResponse>(options.logger, async (call) => {
      const query = checkDeadLetters(callContextOf(call).caller, "purge", call.request);
      const result = await changeDeadLetters(options.queue, "purge", query);
      return create(PurgeDeadLettersResponseSchema, { purged: result.done, notFound: [...result.notFound] });
    }),
    pauseQueue: unary<PauseQueueRequest, PauseQueueResponse>(options.logger, async (call) => {
      const { paused, queued } = await setQueuePaused(options.queue, "pause", call.request.userId);
      return create(PauseQueueResponseSchema, { paused, queued: BigInt(queued) });
    }),
    resumeQueue: unary<ResumeQueueRequest, ResumeQueueResponse>(options.logger, async (call) => {
      const { paused, queued } = await setQueuePaused(options.queue, "resume", call.request.userId);
      return create(ResumeQueueResponseSchema, { paused, queued: BigInt(queued) });
    }),
    listQueues: unary<ListQueuesRequest, ListQueuesResponse>(options.logger, async (call) => {
      const query = checkListQueues(callContextOf(call).caller, call.request);
      const page = await listQueues(options.queue, query);
      return create(ListQueuesResponseSchema, {
        queues: page.queues.map((queue) =>
          create(QueueSummarySchema, {
            userId: queue.userId,
            queued: BigInt(queue.queued),
            running: BigInt(queue.running),
            waitingToRetry: BigInt(queue.waitingToRetry),
            dead: BigInt(queue.dead),
            paused: queue.paused,
          }),
        ),
        nextPageToken: page.nextPageToken,
      });
    }),
    watchQueue: (call: ServerWritableStream<WatchQueueRequest, WatchQueueResponse>) => {
      void serveWatchQueue(call, options.hub, options.policy, options.logger);
    },
  };
}

function unary<Req, Res>(logger: Logger, handle: (call: ServerUnaryCall<Req, Res>) => Promise<Res>) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    handle(call).then(
      (response) => callback(null, response),
      (error: unknown) => {
        callback(reportFailure(logger, error, { method: call.getPath() }), null);
      },
    );
  };
}

function decisionOf(call: ServerUnaryCall<SubmitRequest, SubmitResponse>): SubmitDecision {
  const decision = callContextOf(call).submit;
  if (!decision) throw new Error("Submit reached its handler without a decision; is the interceptor installed?");
  return decision;
}

function submitResponse(decision: SubmitDecision): SubmitResponse {
  switch (decision.outcome) {
    case "started":
      return create(SubmitResponseSchema, {
        taskId: decision.taskId,
        disposition: Disposition.STARTED,
        estimatedStart: timestampFromMs(decision.estimatedStart),
        windows: decision.windows.map(windowStateMessage),
      });
    case "queued":
      return create(SubmitResponseSchema, {
        taskId: decision.taskId,
        disposition: Disposition.QUEUED,
        queuePosition: decision.position,
        estimatedStart: timestampFromMs(decision.estimatedStart),
        windows: decision.windows.map(windowStateMessage),
      });
    case "duplicate":
      return create(SubmitResponseSchema, { taskId: decision.taskId, disposition: Disposition.DUPLICATE });
  }
}

function windowStateMessage(window: WindowState) {
  return create(WindowStateSchema, {
    limit: window.limit,
    duration: durationFromMs(window.durationMs),
    remaining: window.remaining,
    resetTime: window.resetAt === undefined ? undefined : timestampFromMs(window.resetAt),
  });
}

const TASK_STATES: Readonly<Record<TaskStateName, TaskState>> = {
  queued: TaskState.QUEUED,
  running: TaskState.RUNNING,
  succeeded: TaskState.SUCCEEDED,
  failed: TaskState.FAILED,
  dead: TaskState.DEAD,
  cancelled: TaskState.CANCELLED,
  expired: TaskState.EXPIRED,
};

async function getTask(
  call: ServerUnaryCall<GetTaskRequest, GetTaskResponse>,
  { queue, maxAttempts }: TaskServiceOptions,
): Promise<GetTaskResponse> {
  const record = await readTask(queue, callContextOf(call).caller, call.request.taskId);
  return create(GetTaskResponseSchema, { task: taskMessage(record, maxAttempts) });
}

async function listTaskPage(
  call: ServerUnaryCall<ListTasksRequest, ListTasksResponse>,
  { queue, maxAttempts }: TaskServiceOptions,
): Promise<ListTasksResponse> {
  const query = checkListTasks(callContextOf(call).caller, listTasksRequest(call.request));
  const page = await listTasks(queue, query);
  return create(ListTasksResponseSchema, {
    tasks: page.tasks.map((task: ListedTask) => taskMessage(task, maxAttempts, task.position)),
    nextPageToken: page.nextPageToken,
  });
}

async function cancel(
  call: ServerUnaryCall<CancelTaskRequest, CancelTaskResponse>,
  { queue, maxAttempts }: TaskServiceOptions,
): Promise<CancelTaskResponse> {
  const record = await cancelTask(queue, callContextOf(call).caller, call.request.taskId);
  return create(CancelTaskResponseSchema, { task: taskMessage(record, maxAttempts) });
}

function taskMessage(record: TaskRecord, maxAttempts: number, queuePosition = 0) {
  const finished =
    record.state === "succeeded" ||
    record.state === "dead" ||
    record.state === "cancelled" ||
    record.state === "expired";
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
    queuePosition,
    notBefore: record.notBefore === undefined ? undefined : timestampFromMs(record.notBefore),
    startBy: record.startBy === undefined ? undefined : timestampFromMs(record.startBy),
    priority: record.priority,
  });
}
