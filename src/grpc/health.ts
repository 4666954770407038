import { create } from "@bufbuild/protobuf";
import {
  status as GrpcCode,
  type Server,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerWritableStream,
} from "@grpc/grpc-js";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthCheckResponseSchema,
  HealthListResponseSchema,
  type HealthCheckRequest,
  type HealthCheckResponse,
  type HealthListResponse,
} from "../../gen/ts/grpc/health/v1/health_pb.js";
import type { TaskStore } from "../core/store.js";
import type { Logger } from "../logger.js";
import { grpcServiceDefinition, UndecodableRequest } from "./service-definition.js";

/** More services than this and List answers RESOURCE_EXHAUSTED, as the protocol asks. */
const LIST_LIMIT = 100;

/**
 * grpc.health.v1 for "" and each served service: SERVING only once the
 * server is ready (its port bound, its drainer started), while the task
 * store is reachable and the process is not shutting down. The store tells
 * when its availability changes, so nothing polls while all is well.
 * Served from the protobuf-es descriptors the server has loaded anyway
 * (grpc-health-check parsed its health.proto with protobufjs at every start):
 * Check answers NOT_FOUND for a service it does not know, Watch sends the
 * status now (SERVICE_UNKNOWN for such a service) and on every change until
 * the caller cancels, List answers every service's status.
 */
export class HealthReporter {
  private isReady = false;
  private storeAvailable = false;
  private shuttingDown = false;
  private current: ServingStatus | undefined;
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Map<string, Set<(status: ServingStatus) => void>>();
  private readonly stopWatching: () => void;

  constructor(
    store: Pick<TaskStore, "onAvailability">,
    private readonly services: readonly string[],
    private readonly logger: Logger,
  ) {
    // Told the current state at once, which publishes the first status.
    this.stopWatching = store.onAvailability(this.onAvailability);
    this.publish();
  }

  private readonly onAvailability = (available: boolean): void => {
    this.storeAvailable = available;
    this.publish();
  };

  /** The server is ready: SERVING from now on whenever the store is reachable. */
  ready(): void {
    this.isReady = true;
    this.publish(false);
  }

  /** Health goes NOT_SERVING for good: the first step of a graceful stop. */
  shutdown(): void {
    this.shuttingDown = true;
    this.publish();
    this.stopWatching();
  }

  /** Serves grpc.health.v1.Health on `server`. */
  addToServer(server: Server): void {
    server.addService(grpcServiceDefinition(Health), {
      check: this.check,
      watch: this.watch,
      list: this.list,
    });
  }

  /** Sets every service's status; a change is logged, but not the first SERVING at start (`log` false). */
  private publish(log = true): void {
    const status =
      this.isReady && this.storeAvailable && !this.shuttingDown ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
    if (status === this.current) return;
    if (this.current !== undefined && log) {
      this.logger.info(
        { status: ServingStatus[status], storeAvailable: this.storeAvailable, shuttingDown: this.shuttingDown },
        "health changed",
      );
    }
    this.current = status;
    for (const service of ["", ...this.services]) {
      this.statuses.set(service, status);
      for (const watcher of this.watchers.get(service) ?? []) watcher(status);
    }
  }

  private readonly check = (
    call: ServerUnaryCall<HealthCheckRequest | UndecodableRequest, HealthCheckResponse>,
    callback: sendUnaryData<HealthCheckResponse>,
  ): void => {
    const request = call.request;
    if (request instanceof UndecodableRequest) {
      callback({ code: GrpcCode.INVALID_ARGUMENT, details: `the request is not a valid ${request.typeName}` });
      return;
    }
    const status = this.statuses.get(request.service);
    if (status === undefined) {
      callback({ code: GrpcCode.NOT_FOUND, details: `Health status unknown for service ${request.service}` });
      return;
    }
    callback(null, create(HealthCheckResponseSchema, { status }));
  };

  private readonly watch = (
    call: ServerWritableStream<HealthCheckRequest | UndecodableRequest, HealthCheckResponse>,
  ): void => {
    const request = call.request;
    if (request instanceof UndecodableRequest) {
      call.emit("error", {
        code: GrpcCode.INVALID_ARGUMENT,
        details: `the request is not a valid ${request.typeName}`,
      });
      return;
    }
    const service = request.service;
    const send = (status: ServingStatus): void => {
      call.write(create(HealthCheckResponseSchema, { status }));
    };
    const watchers = this.watchers.get(service) ?? new Set();
    this.watchers.set(service, watchers);
    watchers.add(send);
    call.on("cancelled", () => {
      watchers.delete(send);
      if (watchers.size === 0 && this.watchers.get(service) === watchers) this.watchers.delete(service);
    });
    send(this.statuses.get(service) ?? ServingStatus.SERVICE_UNKNOWN);
  };

  private readonly list = (_call: unknown, callback: sendUnaryData<HealthListResponse>): void => {
    if (this.statuses.size > LIST_LIMIT) {
      callback({ code: GrpcCode.RESOURCE_EXHAUSTED, details: "Too many services to list." });
      return;
    }
    const statuses: Record<string, HealthCheckResponse> = {};
    for (const [service, status] of this.statuses) statuses[service] = create(HealthCheckResponseSchema, { status });
    callback(null, create(HealthListResponseSchema, { statuses }));
  };
}
