import cluster from "node:cluster";
import { AggregatorRegistry, Counter, Gauge, Histogram, collectDefaultMetrics } from "prom-client";
import type { TaskStore } from "./core/store.js";

/**
 * Tollgate's Prometheus metrics, in prom-client's default registry of each
 * worker; the primary serves them summed over workers (gauges read from Redis
 * are the same in every worker, so those take the max instead).
 */
export const metrics = {
  submitted: new Counter({
    name: "tollgate_tasks_submitted_total",
    help: "Submit calls by what became of them",
    labelNames: ["disposition"] as const,
  }),
  started: new Counter({
    name: "tollgate_tasks_started_total",
    help: "Task attempts started (each used a unit of every window)",
  }),
  completed: new Counter({ name: "tollgate_tasks_completed_total", help: "Tasks whose handler succeeded" }),
  failed: new Counter({ name: "tollgate_task_attempts_failed_total", help: "Task attempts that threw or timed out" }),
  dead: new Counter({ name: "tollgate_tasks_dead_total", help: "Tasks moved to a dead-letter list" }),
  cancelled: new Counter({
    name: "tollgate_tasks_cancelled_total",
    help: "Tasks that ended cancelled: while queued, delayed or waiting to retry (CancelTask, PurgeQueue), or running when CancelTask marked them (at their attempt's end)",
  }),
  deadLettersRequeued: new Counter({
    name: "tollgate_dead_letters_requeued_total",
    help: "Dead letters queued again (RequeueDeadLetters)",
  }),
  deadLettersPurged: new Counter({
    name: "tollgate_dead_letters_purged_total",
    help: "Dead letters deleted with their records (PurgeDeadLetters)",
  }),
  expired: new Counter({
    name: "tollgate_tasks_expired_total",
    help: "Tasks that ended expired: not started by their start_by",
  }),
  shortOfReplicas: new Counter({
    name: "tollgate_changes_short_of_replicas_total",
    help: "State changes that TOLLGATE_REPLICA_ACKS replicas had not confirmed within the timeout (made on the primary all the same)",
    labelNames: ["change"] as const,
  }),
  remoteWorkers: new Gauge({
    name: "tollgate_remote_workers",
    help: "Workers connected over WorkerService that run the kind",
    labelNames: ["kind"] as const,
  }),
  remoteWorkerSlots: new Gauge({
    name: "tollgate_remote_worker_slots",
    help: "Tasks of the kind the connected workers asked to run at once (a worker of several kinds counts in each)",
    labelNames: ["kind"] as const,
  }),
  remoteWorkerTasks: new Gauge({
    name: "tollgate_remote_worker_tasks",
    help: "Tasks of the kind sent to connected workers and not answered yet",
    labelNames: ["kind"] as const,
  }),
  queued: new Gauge({
    name: "tollgate_tasks_queued",
    help: "Tasks waiting in queues or for a retry, over every user",
    aggregator: "max",
    async collect() {
      // A failed read leaves the last value.
      const snapshot = await source?.snapshotAll().catch(() => undefined);
      if (snapshot) this.set(snapshot.queued);
    },
  }),
  dueUsers: new Gauge({
    name: "tollgate_due_users",
    help: "Users with a queued task scheduled to start",
    aggregator: "max",
    async collect() {
      const count = await source?.dueUserCount().catch(() => undefined);
      if (count !== undefined) this.set(count);
    },
  }),
  deadLettersDropped: new Counter({
    name: "tollgate_dead_letters_dropped_total",
    help: "Dead letters dropped (with their records) because their user's list was at its cap, over every user",
    aggregator: "max",
    async collect() {
      // Counted in Redis (the partitions' totals), so every worker reads the
      // same figure; a failed read leaves the last value.
      const dropped = await source?.droppedDeadLetters().catch(() => undefined);
      if (dropped !== undefined) {
        this.reset();
        this.inc(dropped);
      }
    },
  }),
  watchMessagesSent: new Counter({
    name: "tollgate_watch_messages_sent_total",
    help: "WatchQueue messages handed to their streams",
  }),
  watchMessagesSuperseded: new Counter({
    name: "tollgate_watch_messages_superseded_total",
    help: "WatchQueue snapshots replaced by a newer one before a slow reader could take them",
  }),
  submitSeconds: new Histogram({
    name: "tollgate_submit_duration_seconds",
    help: "Time to validate, decide and store a Submit",
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
  }),
  startLatenessSeconds: new Histogram({
    name: "tollgate_start_lateness_seconds",
    help: "Queued task start minus the earliest moment the policy allowed it",
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
  }),
  taskSeconds: new Histogram({
    name: "tollgate_task_duration_seconds",
    help: "Handler run time per attempt",
    buckets: [0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120],
  }),
};

/** Where the Redis-read gauges come from (the latest server started here). */
let source: TaskStore | undefined;
let defaultsCollected = false;

/** Process metrics, and the queue the Redis-read gauges read at scrape time. */
export function bindMetrics(queue: TaskStore): void {
  source = queue;
  if (!defaultsCollected) {
    // Event-loop lag sampled once a second, not prom-client's default 10 ms:
    // a 100-per-second wake-up was most of an idle worker's CPU.
    collectDefaultMetrics({ prefix: "tollgate_", eventLoopMonitoringPrecision: 1_000 });
    defaultsCollected = true;
    // prom-client answers the primary's metrics requests only in a worker
    // that has built an AggregatorRegistry.
    if (cluster.isWorker) new AggregatorRegistry();
  }
}
