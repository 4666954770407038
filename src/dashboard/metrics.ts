// Starts per second and start lateness, from the primary's /metrics (every
// worker's counters, aggregated), sampled every few seconds: the rates are
// the differences between two samples.

export interface MetricsSample {
  readonly at: number;
  readonly started: number;
  readonly latenessSum: number;
  readonly latenessCount: number;
  /** Cumulative bucket counts by upper bound (seconds). */
  readonly latenessBuckets: ReadonlyMap<number, number>;
}

export interface MetricsPoint {
  /** Seconds since the epoch, as uPlot wants. */
  readonly at: number;
  readonly startsPerSecond: number;
  /** Mean lateness of the starts between the two samples, ms (null: none started). */
  readonly latenessMeanMs: number | null;
  /** The bucket bound that 99% of those starts were under, ms (null: none started). */
  readonly latenessP99Ms: number | null;
}

const LINE = /^([a-z_]+)(?:\{([^}]*)\})?\s+(\S+)$/;

export function parseMetrics(text: string, at: number): MetricsSample {
  let started = 0;
  let latenessSum = 0;
  let latenessCount = 0;
  const latenessBuckets = new Map<number, number>();
  for (const line of text.split("\n")) {
    const match = LINE.exec(line);
    if (!match) continue;
    const [, name, labels = "", valueText = "0"] = match;
    const value = Number(valueText);
    if (name === "tollgate_tasks_started_total") started += value;
    else if (name === "tollgate_start_lateness_seconds_sum") latenessSum += value;
    else if (name === "tollgate_start_lateness_seconds_count") latenessCount += value;
    else if (name === "tollgate_start_lateness_seconds_bucket") {
      const le = /le="([^"]+)"/.exec(labels)?.[1];
      const bound = le === "+Inf" ? Number.POSITIVE_INFINITY : Number(le);
      latenessBuckets.set(bound, (latenessBuckets.get(bound) ?? 0) + value);
    }
  }
  return { at, started, latenessSum, latenessCount, latenessBuckets };
}

export function pointBetween(before: MetricsSample, after: MetricsSample): MetricsPoint {
  const seconds = Math.max(0.001, (after.at - before.at) / 1000);
  const starts = Math.max(0, after.started - before.started);
  const lateCount = after.latenessCount - before.latenessCount;
  let p99: number | null = null;
  if (lateCount > 0) {
    const bounds = [...after.latenessBuckets.keys()].sort((a, b) => a - b);
    for (const bound of bounds) {
      const within = (after.latenessBuckets.get(bound) ?? 0) - (before.latenessBuckets.get(bound) ?? 0);
      if (within >= 0.99 * lateCount) {
        p99 = Number.isFinite(bound) ? bound * 1000 : null;
        break;
      }
    }
  }
  return {
    at: after.at / 1000,
    startsPerSecond: starts / seconds,
    latenessMeanMs: lateCount > 0 ? ((after.latenessSum - before.latenessSum) / lateCount) * 1000 : null,
    latenessP99Ms: p99,
  };
}
