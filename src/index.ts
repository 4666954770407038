// The package's library entry point ("tollgate" once installed; built into
// dist/ by `npm run build`): the typed TaskService client over gRPC, its
// helpers, the worker (WorkerService: tasks run in this process), and the
// generated messages and enums. The server is compiled into
// dist/ too, but nothing here imports it.
export {
  createHealthClient,
  createTollgateClient,
  retryAfterMs,
  submitAndWatch,
  submitMany,
  type SubmitInit,
  type TollgateClient,
  type TollgateClientOptions,
} from "./client/client.js";
export { DoNotRetryError } from "./client/do-not-retry.js";
export { runWorker, type WorkerEvent, type WorkerHandle, type WorkerOptions } from "./client/worker.js";
export type { WorkerHandler, WorkerTask } from "./client/worker-session.js";
export * from "../gen/ts/tollgate/v1/task_service_pb.js";
// WorkerService's messages: none is named like one of TaskService's (tsc would refuse the clash).
export * from "../gen/ts/tollgate/v1/worker_service_pb.js";
export {
  Health,
  HealthCheckResponse_ServingStatus,
  type HealthCheckRequest,
  type HealthCheckResponse,
} from "../gen/ts/grpc/health/v1/health_pb.js";
// Errors are Connect errors: re-exported so that `instanceof` and the codes
// come from the same @connectrpc/connect copy the client uses.
export { Code, ConnectError } from "@connectrpc/connect";
