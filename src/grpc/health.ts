import type {
  Server,
  ServerWritableStream,
  ServiceDefinition,
  UntypedServiceImplementation,
  handleServerStreamingCall,
} from "@grpc/grpc-js";
import { unavailable } from "../core/service-error.js";
import { toStatus } from "./status.js";
import { HealthImplementation, type ServingStatus } from "grpc-health-check";
import type { TaskStore } from "../core/store.js";
import type { Logger } from "../logger.js";

/**
 * grpc.health.v1 for "" and each served service (grpc-health-check): SERVING
 * only once the server is ready (its port bound, its drainer started), while
 * the task store is reachable and the process is not shutting down. The
 * store tells when its availability changes, so nothing polls while all is
 * well.
 */
export class HealthReporter {
  private readonly implementation = new HealthImplementation();
  private isReady = false;
  private storeAvailable = false;
  private shuttingDown = false;
  private current: ServingStatus | undefined;
  private readonly stopWatching: () => void;
  /** Open Watch calls, ended by shutdown(). */
  private readonly watches = new Set<ServerWritableStream<unknown, unknown>>();

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

  /**
   * Health goes NOT_SERVING for good: the first step of a graceful stop.
   * Watch calls are told so, then ended UNAVAILABLE (a client watches again,
   * elsewhere or once this server is back): grpc-health-check keeps
   * a Watch open until its client goes, which would hold the server's
   * graceful stop for its whole grace period.
   */
  shutdown(): void {
    this.shuttingDown = true;
    this.publish();
    this.stopWatching();
    for (const call of this.watches) endWatch(call);
    this.watches.clear();
  }

  /** Serves grpc.health.v1.Health on `server`, knowing its open Watch calls. */
  addToServer(server: Server): void {
    const tracking: Pick<Server, "addService"> = {
      addService: (service: ServiceDefinition, implementation: UntypedServiceImplementation): void => {
        const watch = implementation.watch as handleServerStreamingCall<unknown, unknown> | undefined;
        if (!watch) {
          server.addService(service, implementation);
          return;
        }
        server.addService(service, {
          ...implementation,
          watch: (call: ServerWritableStream<unknown, unknown>) => {
            watch(call); // sends the current status
            // One opened while the server stops has been told NOT_SERVING.
            if (this.shuttingDown) {
              endWatch(call);
              return;
            }
            this.watches.add(call);
            call.once("cancelled", () => this.watches.delete(call));
          },
        });
      },
    };
    this.implementation.addToServer(tracking as Server);
  }

  /** Sets every service's status; a change is logged, but not the first SERVING at start (`log` false). */
  private publish(log = true): void {
    const status: ServingStatus = this.isReady && this.storeAvailable && !this.shuttingDown ? "SERVING" : "NOT_SERVING";
    if (status === this.current) return;
    if (this.current !== undefined && log) {
      this.logger.info(
        { status, storeAvailable: this.storeAvailable, shuttingDown: this.shuttingDown },
        "health changed",
      );
    }
    this.current = status;
    for (const service of ["", ...this.services]) this.implementation.setStatus(service, status);
  }
}

/** Ends a Watch after what it was sent, as WatchQueue's streams end when the server stops. */
function endWatch(call: ServerWritableStream<unknown, unknown>): void {
  call.emit("error", toStatus(unavailable("server shutting down; watch another instance")).status);
}
