import {
  ServerInterceptingCall,
  status as Status,
  type Metadata,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
} from "@grpc/grpc-js";
import type { Authenticator, Identity } from "./auth.js";
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
import { UndecodableRequest, methodPath } from "./grpc-service.js";

export interface RateLimitInterceptorOptions {
  readonly queue: TaskQueue;
  readonly runner: TaskRunner;
  readonly policy: RatePolicy;
  readonly kinds: ReadonlySet<string>;
  readonly maxPayloadBytes: number;
  readonly auth: Authenticator;
  readonly logger: Logger;
}

/** Request metadata beyond this is refused; nothing Tollgate reads needs more. */
export const MAX_METADATA_BYTES = 8 * 1024;

// The decision and the caller travel from the interceptor to the handler keyed
// by the very request object grpc-js hands on, so nothing can spoof or lose them.
const admissions = new WeakMap<object, Admission>();
const callers = new WeakMap<object, Identity>();

/** The decision the interceptor made for this Submit request. */
export function admissionOf(request: SubmitRequest): Admission {
  const admission = admissions.get(request);
  if (!admission) throw new Error("Submit reached its handler without an admission; is the interceptor installed?");
  return admission;
}

/** Who made this TaskService request. */
export function callerOf(request: object): Identity {
  const identity = callers.get(request);
  if (!identity) throw new Error("a request reached its handler without a caller; is the interceptor installed?");
  return identity;
}

type RequestCheck = (message: unknown, caller: Identity) => Promise<void>;

/**
 * The server interceptor in front of TaskService. It establishes the caller
 * (its API key, when auth is on), validates every request, and for Submit
 * applies the rate policy: it makes the decision (start now, queue, or
 * RESOURCE_EXHAUSTED) and stores the task in the same atomic step, since a
 * decision taken apart from its write could be overtaken by another Submit
 * for the same user. The handler turns the decision into the answer. Other
 * services (health, reflection) pass through untouched and stay open.
 */
export function rateLimitInterceptor(options: RateLimitInterceptorOptions): ServerInterceptor {
  const checks = new Map<string, RequestCheck>([
    [methodPath(TaskService, "Submit"), (message, caller) => admit(message as SubmitRequest, caller, options)],
    [methodPath(TaskService, "WatchQueue"), async (message, caller) => checkWatchQueue(message as WatchQueueRequest, caller)],
    [methodPath(TaskService, "GetTask"), async (message) => checkGetTask(message as GetTaskRequest)],
  ]);
  return (method, call) => {
    const check = checks.get(method.path);
    if (!check) return new ServerInterceptingCall(call);
    let caller: Identity | undefined;
    // Every TaskService method takes exactly one request message. It is
    // checked (for Submit: admitted and stored) only when the request stream
    // ends with that one message, so a call refused for carrying a second
    // message has stored nothing. grpc-js clients send the end with
    // the message, so this waits for nothing; and grpc-js calls a unary or
    // server-streaming handler only at the end anyway.
    let request: { readonly message: unknown } | undefined;
    let refused = false;
    const refuse = (error: unknown): void => {
      refused = true;
      intercepting.sendStatus(reportFailure(options.logger, error, { method: method.path }));
    };
    const intercepting: ServerInterceptingCallInterface = new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, passOn) => {
            try {
              caller = identify(metadata, options.auth);
              passOn(metadata);
            } catch (error) {
              refuse(error);
            }
          },
          onReceiveMessage: (message, passOn) => {
            if (refused) return;
            if (request !== undefined) {
              // Not passed on: grpc-js would refuse it too, but only after
              // the first had been checked on its own.
              refuse(
                new ServiceError(
                  Status.INVALID_ARGUMENT,
                  `${method.path} takes exactly one request message and this call sent more; nothing was stored`,
                ),
              );
              return;
            }
            if (message instanceof UndecodableRequest) {
              refuse(new ServiceError(Status.INVALID_ARGUMENT, `the request is not a valid ${message.typeName}: ${message.reason}`));
              return;
            }
            request = { message };
            // grpc-js keeps it for the handler and reads on: to a second
            // message or the end of the stream, where the check runs.
            passOn(message);
          },
          onReceiveHalfClose: (passOn) => {
            if (refused) return;
            // Without a message grpc-js answers "no request message" itself.
            if (request === undefined) return passOn();
            const { message } = request;
            check(message, caller!).then(
              () => {
                callers.set(message as object, caller!);
                passOn();
              },
              refuse,
            );
          },
        }),
    });
    return intercepting as ServerInterceptingCall;
  };
}

function identify(metadata: Metadata, auth: Authenticator): Identity {
  let bytes = 0;
  for (const [key, values] of Object.entries(metadata.toJSON())) {
    for (const value of values) bytes += key.length + (typeof value === "string" ? Buffer.byteLength(value) : value.length);
  }
  if (bytes > MAX_METADATA_BYTES) {
    throw new ServiceError(Status.INVALID_ARGUMENT, `request metadata is ${bytes} bytes; the limit is ${MAX_METADATA_BYTES}`);
  }
  const identity = auth.identify(metadata);
  if (!identity) {
    throw new ServiceError(
      Status.UNAUTHENTICATED,
      "missing or unknown API key: send the metadata header \"authorization: Bearer <key>\"",
    );
  }
  return identity;
}

/** May this caller act on `userId`'s queue and tasks? */
export function mayActFor(caller: Identity, userId: string): boolean {
  return caller.kind !== "user" || caller.userId === userId;
}

function permissionDenied(caller: Identity, what: string): ServiceError {
  const who = caller.kind === "user" ? `user "${caller.userId}"` : "this caller";
  return new ServiceError(Status.PERMISSION_DENIED, `this API key acts for ${who} only; it may not ${what}`);
}

async function admit(request: SubmitRequest, caller: Identity, options: RateLimitInterceptorOptions): Promise<void> {
  const timer = metrics.submitSeconds.startTimer();
  try {
    await decide(request, caller, options);
  } finally {
    timer();
  }
}

async function decide(request: SubmitRequest, caller: Identity, options: RateLimitInterceptorOptions): Promise<void> {
  // With auth, a user's key may leave user_id empty: it means the key's user.
  if (request.userId === "" && caller.kind === "user") request.userId = caller.userId;
  checkUserId(request.userId);
  if (!mayActFor(caller, request.userId)) throw permissionDenied(caller, `submit for user "${request.userId}"`);
  checkPayload(request.payload, options.maxPayloadBytes);
  checkKind(request.kind, options.kinds);
  checkIdempotencyKey(request.idempotencyKey);
  if (!(request.overLimit in OverLimit)) {
    throw invalidArgument("over_limit", `unknown value ${request.overLimit}; use QUEUE or REJECT`);
  }
  // A slot is held across the admit so that a task told STARTED can run at
  // once; without a free slot the task queues and any process's drainer
  // starts it when a slot frees. The slot is held until admit knows the
  // outcome, which after a lost reply takes a read of the task's record.
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

async function checkWatchQueue(request: WatchQueueRequest, caller: Identity): Promise<void> {
  if (request.userId === "") {
    if (caller.kind === "user") throw permissionDenied(caller, "watch every queue (admins only)");
    return;
  }
  checkUserId(request.userId);
  if (!mayActFor(caller, request.userId)) throw permissionDenied(caller, `watch user "${request.userId}"'s queue`);
}

async function checkGetTask(request: GetTaskRequest): Promise<void> {
  if (request.taskId === "") throw invalidArgument("task_id", "is required");
  if (!isTaskId(request.taskId)) throw invalidArgument("task_id", "is not a Tollgate task id (22 characters of base64url)");
}
