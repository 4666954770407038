import { timestampMs } from "@bufbuild/protobuf/wkt";
import {
  ServerInterceptingCall,
  type Metadata,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
} from "@grpc/grpc-js";
import type { Authenticator } from "./api-keys.js";
import { attachCallContext, type CallContext } from "./call-context.js";
import { reportFailure } from "./status.js";
import type { Logger } from "../logger.js";
import type { Identity } from "../core/authorization.js";
import type { RatePolicy } from "../core/rate-policy.js";
import { checkGetTask, checkWatchQueue } from "../core/reads.js";
import { checkListTasks } from "../core/list-tasks.js";
import { checkCancelTask, checkPurgeQueue } from "../core/cancel.js";
import { checkDeadLetters } from "../core/dead-letters.js";
import { checkPauseQueue } from "../core/pause.js";
import { checkListQueues } from "../core/list-queues.js";
import { malformedRequest, unauthenticated } from "../core/service-error.js";
import type { TaskStore } from "../core/store.js";
import { decideSubmit, type SubmitCommand, type SubmitRules } from "../core/submit.js";
import type { TaskRunner } from "../core/task-runner.js";
import {
  OverLimit,
  TaskService,
  type CancelTaskRequest,
  type GetTaskRequest,
  type ListTasksRequest,
  type ListQueuesRequest,
  type PauseQueueRequest,
  type PurgeQueueRequest,
  type PurgeDeadLettersRequest,
  type RequeueDeadLettersRequest,
  type ResumeQueueRequest,
  type SubmitRequest,
  type WatchQueueRequest,
} from "../../gen/ts/tollgate/v1/task_service_pb.js";
import { UndecodableRequest, methodPath } from "./service-definition.js";
import { listTasksRequest } from "./list-tasks.js";
import type { TraceHeaders, Tracing } from "../tracing.js";

export interface RateLimitInterceptorOptions {
  readonly queue: TaskStore;
  readonly runner: TaskRunner;
  readonly policy: RatePolicy;
  readonly kinds: ReadonlySet<string>;
  /** With TOLLGATE_REQUIRE_KNOWN_KINDS: the kinds run anywhere (see SubmitRules). */
  readonly knownKinds?: () => Promise<ReadonlySet<string>>;
  readonly maxPayloadBytes: number;
  readonly auth: Authenticator;
  readonly logger: Logger;
  /** Traces Submit when set (src/tracing.ts). */
  readonly tracing?: Tracing | undefined;
}

/** Request metadata beyond this is refused; nothing Tollgate reads needs more. */
const MAX_METADATA_BYTES = 8 * 1024;

/**
 * Services anyone may call, key or none: orchestrators' health probes and
 * schema discovery. Every other service, including any added later, needs a
 * key when auth is on.
 */
const OPEN_SERVICES: ReadonlySet<string> = new Set([
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
]);

/** What runs before a method's handler, with its one request message; it may add to the context. */
type RequestCheck = (message: unknown, context: CallContext) => Promise<void>;

/**
 * The server interceptor in front of every service but the open ones. It
 * establishes the caller (its API key, when auth is on) for every method,
 * then runs the core's check for the method, if it has one: for Submit the
 * core's decision, which applies the rate policy (start now, queue, or
 * RESOURCE_EXHAUSTED) and stores the task before the handler runs. The caller
 * and the decision reach the handler in the call's context (call-context.ts).
 */
export function rateLimitInterceptor(options: RateLimitInterceptorOptions): ServerInterceptor {
  const submitRules: SubmitRules = {
    store: options.queue,
    runner: options.runner,
    policy: options.policy,
    kinds: options.kinds,
    ...(options.knownKinds ? { knownKinds: options.knownKinds } : {}),
    maxPayloadBytes: options.maxPayloadBytes,
  };
  const checks = new Map<string, RequestCheck>([
    [
      methodPath(TaskService, "Submit"),
      async (message, context) => {
        const command = submitCommand(message as SubmitRequest);
        const { tracing } = options;
        context.submit = tracing
          ? await tracing.traceSubmit(context.trace ?? {}, command.userId, (traceparent) =>
              decideSubmit(submitRules, context.caller, { ...command, traceparent }),
            )
          : await decideSubmit(submitRules, context.caller, command);
      },
    ],
    [
      methodPath(TaskService, "WatchQueue"),
      async (message, context) => checkWatchQueue(context.caller, (message as WatchQueueRequest).userId),
    ],
    [methodPath(TaskService, "GetTask"), async (message) => checkGetTask((message as GetTaskRequest).taskId)],
    [
      methodPath(TaskService, "ListTasks"),
      async (message, context) => {
        checkListTasks(context.caller, listTasksRequest(message as ListTasksRequest));
      },
    ],
    [methodPath(TaskService, "CancelTask"), async (message) => checkCancelTask((message as CancelTaskRequest).taskId)],
    [
      methodPath(TaskService, "PurgeQueue"),
      async (message, context) => checkPurgeQueue(context.caller, (message as PurgeQueueRequest).userId),
    ],
    [
      methodPath(TaskService, "PauseQueue"),
      async (message, context) => checkPauseQueue(context.caller, "pause", (message as PauseQueueRequest).userId),
    ],
    [
      methodPath(TaskService, "ResumeQueue"),
      async (message, context) => checkPauseQueue(context.caller, "resume", (message as ResumeQueueRequest).userId),
    ],
    [
      methodPath(TaskService, "ListQueues"),
      async (message, context) => {
        checkListQueues(context.caller, message as ListQueuesRequest);
      },
    ],
    [
      methodPath(TaskService, "RequeueDeadLetters"),
      async (message, context) => {
        checkDeadLetters(context.caller, "requeue", message as RequeueDeadLettersRequest);
      },
    ],
    [
      methodPath(TaskService, "PurgeDeadLetters"),
      async (message, context) => {
        checkDeadLetters(context.caller, "purge", message as PurgeDeadLettersRequest);
      },
    ],
  ]);
  return (method, call) => {
    if (OPEN_SERVICES.has(serviceName(method.path))) return new ServerInterceptingCall(call);
    const check = checks.get(method.path);
    let context: CallContext | undefined;
    // A method that takes one request message has it checked (for Submit:
    // admitted and stored) only when the request stream ends with exactly
    // that one message, so a call refused for carrying a second message has
    // stored nothing. grpc-js clients send the end with the message, so this
    // waits for nothing; and grpc-js calls a unary or server-streaming handler
    // only at the end anyway. A streaming request's messages pass through.
    const singleMessage = !method.requestStream;
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
              context = {
                caller: identify(metadata, options.auth),
                ...(options.tracing ? { trace: traceHeaders(metadata) } : {}),
              };
              attachCallContext(metadata, context);
              passOn(metadata);
            } catch (error) {
              refuse(error);
            }
          },
          onReceiveMessage: (message, passOn) => {
            if (refused) return;
            if (singleMessage && request !== undefined) {
              // Not passed on: grpc-js would refuse it too, but only after
              // the first had been checked on its own.
              refuse(
                malformedRequest(
                  `${method.path} takes exactly one request message and this call sent more; nothing was stored`,
                ),
              );
              return;
            }
            if (message instanceof UndecodableRequest) {
              refuse(malformedRequest(`the request is not a valid ${message.typeName}: ${message.reason}`));
              return;
            }
            if (!singleMessage) return passOn(message);
            request = { message };
            // grpc-js keeps it for the handler and reads on: to a second
            // message or the end of the stream, where the check runs.
            passOn(message);
          },
          onReceiveHalfClose: (passOn) => {
            if (refused) return;
            // Without a message grpc-js answers "no request message" itself.
            // (The context is set unless refused: the metadata comes first.)
            if (!singleMessage || request === undefined || !check || !context) return passOn();
            check(request.message, context).then(() => passOn(), refuse);
          },
        }),
    });
    return intercepting as ServerInterceptingCall;
  };
}

function traceHeaders(metadata: Metadata): TraceHeaders {
  const text = (key: string): string | undefined => {
    const value = metadata.get(key)[0];
    return typeof value === "string" ? value : undefined;
  };
  return { traceparent: text("traceparent"), tracestate: text("tracestate") };
}

/** "grpc.health.v1.Health" of "/grpc.health.v1.Health/Check". */
function serviceName(path: string): string {
  return path.slice(1, path.lastIndexOf("/"));
}

function identify(metadata: Metadata, auth: Authenticator): Identity {
  let bytes = 0;
  for (const [key, values] of Object.entries(metadata.toJSON())) {
    for (const value of values)
      bytes += key.length + (typeof value === "string" ? Buffer.byteLength(value) : value.length);
  }
  if (bytes > MAX_METADATA_BYTES) {
    throw malformedRequest(`request metadata is ${bytes} bytes; the limit is ${MAX_METADATA_BYTES}`);
  }
  const identity = auth.identify(metadata);
  if (!identity) {
    throw unauthenticated('missing or unknown API key: send the metadata header "authorization: Bearer <key>"');
  }
  return identity;
}

function submitCommand(request: SubmitRequest): SubmitCommand {
  return {
    userId: request.userId,
    payload: request.payload,
    kind: request.kind,
    idempotencyKey: request.idempotencyKey,
    overLimit: overLimitMode(request.overLimit),
    notBefore: request.notBefore ? timestampMs(request.notBefore) : undefined,
    startBy: request.startBy ? timestampMs(request.startBy) : undefined,
    priority: request.priority,
    cost: request.cost,
  };
}

function overLimitMode(value: OverLimit): SubmitCommand["overLimit"] {
  switch (value) {
    case OverLimit.UNSPECIFIED:
    case OverLimit.QUEUE:
      return "queue";
    case OverLimit.REJECT:
      return "reject";
    default:
      return { unknown: value };
  }
}
