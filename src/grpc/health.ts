import { HealthImplementation, type ServingStatus } from "grpc-health-check";
import type { TaskStore } from "../core/store.js";
import type { Logger } from "../logger.js";

/**
 * grpc.health.v1 for "" and each served service: SERVING only while the task
 * store is reachable and the process is not shutting down. The store tells
 * when its availability changes, so nothing polls while all is well.
 */
export class HealthReporter {
  readonly implementation: HealthImplementation;
  private storeAvailable = false;
  private shuttingDown = false;
  private current: ServingStatus | undefined;
  private readonly stopWatching: () => void;

  constructor(
    store: Pick<TaskStore, "onAvailability">,
    private readonly services: readonly string[],
    private readonly logger: Logger,
  ) {
    this.implementation = new HealthImplementation();
    // Told the current state at once, which publishes the first status.
    this.stopWatching = store.onAvailability(this.onAvailability);
    this.publish();
  }

  private readonly onAvailability = (available: boolean): void => {
    this.storeAvailable = available;
    this.publish();
  };

  /** Health goes NOT_SERVING for good: the first step of a graceful stop. */
  shutdown(): void {
    this.shuttingDown = true;
    this.publish();
    this.stopWatching();
  }

  private publish(): void {
    const status: ServingStatus = this.storeAvailable && !this.shuttingDown ? "SERVING" : "NOT_SERVING";
    if (status === this.current) return;
    if (this.current !== undefined) {
      this.logger.info(
        { status, storeAvailable: this.storeAvailable, shuttingDown: this.shuttingDown },
        "health changed",
      );
    }
    this.current = status;
    for (const service of ["", ...this.services]) this.implementation.setStatus(service, status);
  }
}
