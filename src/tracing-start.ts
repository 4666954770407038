import type { RunningTracing } from "./tracing.js";

/** The standard OpenTelemetry variables that turn tracing on. */
const ENDPOINT_VARIABLES = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"] as const;

/**
 * Starts exporting traces over OTLP (HTTP) when the environment names an
 * endpoint (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
 * the exporter reads its other OTEL_EXPORTER_OTLP_* settings itself), unless
 * OTEL_SDK_DISABLED is true or OTEL_TRACES_EXPORTER is none. Undefined: off,
 * and OpenTelemetry is not loaded at all (tracing.ts and the SDK and exporter
 * it imports are about 250 modules, some 85 ms of a worker's start).
 */
export async function startTracing(
  env: Readonly<Record<string, string | undefined>>,
  instance: string,
): Promise<RunningTracing | undefined> {
  const configured = ENDPOINT_VARIABLES.some((name) => (env[name] ?? "").trim() !== "");
  if (!configured || env.OTEL_SDK_DISABLED === "true" || env.OTEL_TRACES_EXPORTER === "none") return undefined;
  return (await import("./tracing.js")).exportTraces(env, instance);
}
