import { HealthImplementation, type ServingStatus } from "grpc-health-check";
import type { Redis } from "ioredis";
import type { Logger } from "../logger.js";

/**
 * grpc.health.v1 for "" and each served service: SERVING only while Redis
 * answers and the process is not shutting down. Redis' state comes from the
 * client's connection events, so nothing polls while all is well.
 */
export class HealthReporter {
  readonly implementation: HealthImplementation;
  private redisReady: boolean;
  private shuttingDown = false;
  private current: ServingStatus | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly services: readonly string[],
    private readonly logger: Logger,
  ) {
    this.implementation = new HealthImplementation();
    this.redisReady = redis.status === "ready";
    redis.on("ready", this.onReady);
    redis.on("close", this.onLost);
    redis.on("end", this.onLost);
    this.publish();
  }

  private readonly onReady = (): void => {
    this.redisReady = true;
    this.publish();
  };

  private readonly onLost = (): void => {
    this.redisReady = false;
    this.publish();
  };

  /** Health goes NOT_SERVING for good: the first step of a graceful stop. */
  shutdown(): void {
    this.shuttingDown = true;
    this.publish();
    this.redis.off("ready", this.onReady);
    this.redis.off("close", this.onLost);
    this.redis.off("end", this.onLost);
  }

  private publish(): void {
    const status: ServingStatus = this.redisReady && !this.shuttingDown ? "SERVING" : "NOT_SERVING";
    if (status === this.current) return;
    if (this.current !== undefined) {
      this.logger.info({ status, redisReady: this.redisReady, shuttingDown: this.shuttingDown }, "health changed");
    }
    this.current = status;
    for (const service of ["", ...this.services]) this.implementation.setStatus(service, status);
  }
}
