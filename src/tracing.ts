import { hostname } from "node:os";
import {
  context as otelContext,
  defaultTextMapGetter,
  defaultTextMapSetter,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Tracer,
  type TracerProvider,
} from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import type { SubmitDecision } from "./core/submit.js";
import type { AttemptTrace, TaskTracer, TracedAttempt } from "./core/task-tracer.js";

/**
 * OpenTelemetry traces of a task's path: a span for its Submit (continuing
 * the caller's trace from the W3C `traceparent` and `tracestate` metadata),
 * the Submit span's traceparent stored with the task in Redis, then, on
 * whichever host starts it, a span for its wait in the queue and one per
 * attempt, children of the Submit span. On only when an OTLP endpoint is
 * configured (tracing-start.ts); otherwise the server passes no tracer and the
 * Submit path does no tracing work at all.
 */

/** The W3C trace headers of a call, as its transport received them. */
export interface TraceHeaders {
  readonly traceparent?: string | undefined;
  readonly tracestate?: string | undefined;
}

/** Span and attribute names (tollgate.* for what OpenTelemetry has no convention for). */
export const SPAN = Object.freeze({
  SUBMIT: "tollgate.v1.TaskService/Submit",
  WAIT: "tollgate.task.wait",
  ATTEMPT: "tollgate.task.attempt",
});

const propagator = new W3CTraceContextPropagator();

/** The traceparent of `span` in `parent`'s trace, for storing with a task. */
function traceparentOf(spanContext: Context): string | undefined {
  const carrier: Record<string, string> = {};
  propagator.inject(spanContext, carrier, defaultTextMapSetter);
  return carrier.traceparent;
}

function contextFrom(headers: TraceHeaders): Context {
  return propagator.extract(ROOT_CONTEXT, headers, defaultTextMapGetter);
}

export class Tracing implements TaskTracer {
  private readonly tracer: Tracer;

  constructor(provider: TracerProvider) {
    this.tracer = provider.getTracer("tollgate");
  }

  /**
   * Runs Submit's decision inside its span; `decide` gets the traceparent to
   * store with the task. The span ends with the decision (disposition, task
   * id, queue position) or the error it was refused with.
   */
  async traceSubmit(
    headers: TraceHeaders,
    userId: string,
    decide: (traceparent: string | undefined) => Promise<SubmitDecision>,
  ): Promise<SubmitDecision> {
    const parent = contextFrom(headers);
    const span = this.tracer.startSpan(
      SPAN.SUBMIT,
      {
        kind: SpanKind.SERVER,
        attributes: {
          "rpc.system": "grpc",
          "rpc.service": "tollgate.v1.TaskService",
          "rpc.method": "Submit",
          "tollgate.user_id": userId,
        },
      },
      parent,
    );
    try {
      const decision = await decide(traceparentOf(trace.setSpan(parent, span)));
      span.setAttributes({
        "tollgate.disposition": decision.outcome,
        "tollgate.task_id": decision.taskId,
        ...(decision.outcome === "queued" ? { "tollgate.queue_position": decision.position } : {}),
      });
      return decision;
    } catch (error) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
      throw error;
    } finally {
      span.end();
    }
  }

  attemptStarted(attempt: TracedAttempt): AttemptTrace {
    const parent = attempt.trace ? contextFrom({ traceparent: attempt.trace.traceparent }) : ROOT_CONTEXT;
    const attributes: Attributes = {
      "tollgate.task_id": attempt.taskId,
      "tollgate.user_id": attempt.userId,
      "tollgate.kind": attempt.kind,
    };
    const now = Date.now();
    const submittedAt = attempt.trace?.submittedAt;
    // The wait before the first start; a retry's wait is its backoff, in the
    // gap between its attempts' spans.
    if (attempt.claimed && attempt.attempt === 1 && submittedAt !== undefined && submittedAt > 0) {
      this.tracer
        .startSpan(SPAN.WAIT, { kind: SpanKind.INTERNAL, startTime: Math.min(submittedAt, now), attributes }, parent)
        .end(now);
    }
    const span = this.tracer.startSpan(
      SPAN.ATTEMPT,
      { kind: SpanKind.CONSUMER, startTime: now, attributes: { ...attributes, "tollgate.attempt": attempt.attempt } },
      parent,
    );
    const inSpan = trace.setSpan(parent, span);
    return {
      run: (work) => otelContext.with(inSpan, work),
      end: (outcome, error) => {
        span.setAttribute("tollgate.outcome", outcome);
        if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: error });
        span.end();
      },
    };
  }
}

export interface RunningTracing {
  readonly tracing: Tracing;
  /** Exports what is buffered, then stops. */
  shutdown(): Promise<void>;
}

/**
 * Exports traces over OTLP (HTTP); the exporter reads its OTEL_EXPORTER_OTLP_*
 * settings itself. Called by tracing-start.ts only when an endpoint is
 * configured, so a process without one never loads this module.
 */
export function exportTraces(env: Readonly<Record<string, string | undefined>>, instance: string): RunningTracing {
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({
      "service.name": env.OTEL_SERVICE_NAME ?? "tollgate",
      "service.instance.id": `${hostname()}/${process.pid}/${instance}`,
    }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
  });
  // The global context manager lets a handler's own spans nest under its attempt.
  provider.register();
  return { tracing: new Tracing(provider), shutdown: () => provider.shutdown() };
}
