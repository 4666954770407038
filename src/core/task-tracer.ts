import type { FinishOutcome } from "./store.js";

/**
 * Tracing of a task's run, as the core sees it: the runner tells the tracer
 * that an attempt starts and how it ended, and runs the handler inside what
 * the tracer returns (so a handler's own spans nest under its attempt). A
 * task carries its trace through Redis as a W3C traceparent, the context of
 * the Submit that stored it. src/tracing.ts implements this with
 * OpenTelemetry; without tracing configured the runner uses `noTracing`,
 * which costs nothing.
 */

/** What the store keeps of a task's trace. */
export interface TaskTraceContext {
  /** W3C traceparent of the task's Submit span. */
  readonly traceparent: string;
  /** When it was submitted (ms): a task claimed from its queue waited since then. */
  readonly submittedAt?: number | undefined;
}

/** An attempt about to run, as the tracer sees it. */
export interface TracedAttempt {
  readonly taskId: string;
  readonly userId: string;
  readonly kind: string;
  readonly attempt: number;
  /** Absent: the task was submitted without tracing. */
  readonly trace?: TaskTraceContext | undefined;
  /** A drainer claimed it from its queue (not started by its Submit). */
  readonly claimed: boolean;
}

/** How an attempt ended: the store's outcome, or what stopped it being recorded. */
type AttemptEnd = FinishOutcome | "handed-back" | "not-recorded";

export interface AttemptTrace {
  /** Runs the handler inside the attempt's context. */
  run<T>(work: () => T): T;
  end(outcome: AttemptEnd, error?: string): void;
}

export interface TaskTracer {
  attemptStarted(attempt: TracedAttempt): AttemptTrace;
}

const NO_ATTEMPT_TRACE: AttemptTrace = {
  run: (work) => work(),
  end: () => {},
};

export const noTracing: TaskTracer = { attemptStarted: () => NO_ATTEMPT_TRACE };
