import type { Server } from "@grpc/grpc-js";
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
    this.implementation.addToServer(server);
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
