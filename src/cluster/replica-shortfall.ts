import { type Clock, systemClock } from "../core/clock.js";
import type { Logger } from "../logger.js";
import { metrics } from "../metrics.js";
import type { StateChange } from "../redis/redis-store.js";

/** At most one warning per this long: a replica that fell behind would otherwise log every change. */
const WARNING_INTERVAL_MS = 10_000;

/**
 * What a worker does with a change WAIT left short of its replicas: counts it
 * (tollgate_changes_short_of_replicas_total{change}) and warns, the first time
 * and then at most every 10 s with how many there were since the last warning.
 * Submit also tells its caller (UNAVAILABLE); a claim, finish or release goes
 * on, so this is the only trace of it.
 */
export function reportShortOfReplicas(
  logger: Logger,
  clock: Clock = systemClock,
): (change: StateChange, replicas: number, required: number) => void {
  let lastWarningAt = Number.NEGATIVE_INFINITY;
  let since = 0;
  return (change, replicas, required) => {
    metrics.shortOfReplicas.inc({ change });
    since++;
    const now = clock.now();
    if (now - lastWarningAt < WARNING_INTERVAL_MS) return;
    logger.warn(
      { change, replicas, required, changesShortSinceLastWarning: since },
      `a ${change} was confirmed by ${replicas} of ${required} replicas in time; it is on the primary only, and a failover now could lose it`,
    );
    lastWarningAt = now;
    since = 0;
  };
}
