import {
  ServerInterceptingCall,
  status as Status,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
} from "@grpc/grpc-js";
import { ServiceError, invalidArgument, reportFailure } from "./errors.js";
import type { Logger } from "./logger.js";
import { metrics } from "./metrics.js";
import type { RatePolicy } from "./rate-policy.js";
import { nthStartTime } from "./start-schedule.js";
import type { Admission, TaskQueue } from "./task-queue.js";
import type { TaskRunner } from "./task-runner.js";
import { isTaskId } from "./task-id.js";
import { checkIdempotencyKey, checkKind, checkPayload, checkUserId } from "./validation.js";
import {
  OverLimit,
  TaskService,
  type GetTaskRequest,
  type SubmitRequest,
  type WatchQueueRequest,
} from "../gen/ts/tollgate/v1/task_service_pb.js";
import { methodPath } from "./grpc-service.js";

export interface RateLimitInterceptorOptions {
  readonly queue: TaskQueue;
  readonly runner: TaskRunner;
  readonly policy: RatePolicy;
  readonly kinds: ReadonlySet<string>;
  readonly maxPayloadBytes: number;
  readonly logger: Logger;
}

// The decision travels from the interceptor to the handler keyed by the very
// request object grpc-js hands on, so nothing can spoof or lose it.
const admissions = new WeakMap<object, Admission>();

/** The decision the interceptor made for this Submit request. */
export function admissionOf(request: SubmitRequest): Admission {
  const admission = admissions.get(request);
  if (!admission) throw new Error("Submit reached its handler without an admission; is the interceptor installed?");
  return admission;
}

type RequestCheck = (message: unknown) => Promise<void>;

/**
 * Applies the rate policy before TaskService's handlers run: it validates
 * every TaskService request, and for Submit makes the decision (start now,
 * queue, or RESOURCE_EXHAUSTED) and stores the task in the same atomic step,
 * since a decision taken apart from its write could be overtaken by another
 * Submit for the same user. The handler turns the decision into the answer.
 * Other services (health, reflection) pass through.
 */
export function rateLimitInterceptor(options: RateLimitInterceptorOptions): ServerInterceptor {
  const checks = new Map<string, RequestCheck>([
    [methodPath(TaskService, "Submit"), (message) => admit(message as SubmitRequest, options)],
    [methodPath(TaskService, "WatchQueue"), async (message) => checkWatchQueue(message as WatchQueueRequest)],
    [methodPath(TaskService, "GetTask"), async (message) => checkGetTask(message as GetTaskRequest)],
  ]);
  return (method, call) => {
    const check = checks.get(method.path);
    if (!check) return new ServerInterceptingCall(call);
    const intercepting: ServerInterceptingCallInterface = new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMessage: (message, passOn) => {
            const timer = metrics.submitSeconds.startTimer();
            check(message).then(
              () => {
                timer();
                passOn(message);
              },
              (error: unknown) => {
                timer();
                intercepting.sendStatus(reportFailure(options.logger, error, { method: method.path }));
              },
            );
          },
        }),
    });
    return intercepting as ServerInterceptingCall;
  };
}

async function admit(request: SubmitRequest, options: RateLimitInterceptorOptions): Promise<void> {
  checkUserId(request.userId);
  checkPayload(request.payload, options.maxPayloadBytes);
  checkKind(request.kind, options.kinds);
  checkIdempotencyKey(request.idempotencyKey);
  if (!(request.overLimit in OverLimit)) {
    throw invalidArgument("over_limit", `unknown value ${request.overLimit}; use QUEUE or REJECT`);
  }
  // A slot is held across the admit so that a task told STARTED can run at
  // once; without a free slot the task queues and any process's drainer
  // starts it when a slot frees.
  const reserved = options.runner.reserve();
  let admission: Admission;
  try {
    admission = await options.queue.admit({
      userId: request.userId,
      payload: request.payload,
      kind: request.kind,
      idempotencyKey: request.idempotencyKey,
      rejectOverLimit: request.overLimit === OverLimit.REJECT,
      canStartNow: reserved,
    });
  } catch (error) {
    if (reserved) options.runner.release();
    throw error;
  }
  if (admission.outcome === "started") {
    // Started here, not in the handler: the task is stored as running and
    // must run even if the caller goes away before its answer.
    options.runner.start(
      { taskId: admission.taskId, userId: request.userId, kind: request.kind, payload: request.payload, attempt: 1 },
      true,
    );
  } else if (reserved) {
    options.runner.release();
  }
  if (admission.outcome === "over-limit" || admission.outcome === "backlog-full") {
    metrics.submitted.inc({ disposition: admission.outcome });
  }
  if (admission.outcome === "over-limit") {
    // A new task could start once everything queued ahead of it has.
    const retryAt = nthStartTime(options.policy, admission.windows, admission.now, admission.queued + 1);
    throw new ServiceError(
      Status.RESOURCE_EXHAUSTED,
      `user is over the rate limit${admission.queued > 0 ? ` with ${admission.queued} tasks queued` : ""} and over_limit is REJECT; nothing was stored`,
      Math.max(1, retryAt - admission.now),
    );
  }
  if (admission.outcome === "backlog-full") {
    // A place frees up when the head of the queue starts.
    const retryAt = nthStartTime(options.policy, admission.windows, admission.now, 1);
    throw new ServiceError(
      Status.RESOURCE_EXHAUSTED,
      `user's backlog is full (${admission.queued} tasks queued); nothing was stored`,
      Math.max(1, retryAt - admission.now),
    );
  }
  metrics.submitted.inc({ disposition: admission.outcome });
  admissions.set(request, admission);
}

async function checkWatchQueue(request: WatchQueueRequest): Promise<void> {
  if (request.userId !== "") checkUserId(request.userId);
}

async function checkGetTask(request: GetTaskRequest): Promise<void> {
  if (request.taskId === "") throw invalidArgument("task_id", "is required");
  if (!isTaskId(request.taskId)) throw invalidArgument("task_id", "is not a Tollgate task id (22 characters of base64url)");
}
