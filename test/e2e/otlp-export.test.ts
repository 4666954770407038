// `tollgate serve` with OTEL_EXPORTER_OTLP_ENDPOINT set exports its spans over
// OTLP/HTTP: a collector (a plain HTTP server here, reading the JSON the
// exporter posts to /v1/traces) receives the Submit and attempt spans of a
// Submit that carried a traceparent, in the caller's trace, from a resource
// named tollgate. Without the variable nothing is exported (the other tests).
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { after, before, describe, test } from "node:test";
import { createTollgateClient } from "../../src/client/client.js";
import { pollUntil } from "../support/expect.js";
import { usePrivateRedis } from "../support/fixture.js";
import { type ServeProcess, serveSettings, startServeProcess } from "../support/serve-process.js";

const CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT = `00-${CALLER_TRACE}-00f067aa0ba902b7-01`;

interface ExportedSpan {
  readonly traceId: string;
  readonly name: string;
  readonly service: string;
}

const ctx = usePrivateRedis("otlp");
const received: ExportedSpan[] = [];
let collector: Server;
let serve: ServeProcess;

interface OtlpJson {
  resourceSpans?: {
    resource?: { attributes?: { key: string; value: { stringValue?: string } }[] };
    scopeSpans?: { spans?: { traceId: string; name: string }[] }[];
  }[];
}

describe("OTLP export", () => {
  before(async () => {
    collector = createServer((request, response) => {
      let body = "";
      request.on("data", (chunk: Buffer) => (body += chunk.toString()));
      request.on("end", () => {
        if (request.url === "/v1/traces") {
          const data = JSON.parse(body) as OtlpJson;
          for (const resourceSpans of data.resourceSpans ?? []) {
            const service =
              resourceSpans.resource?.attributes?.find((attribute) => attribute.key === "service.name")?.value
                .stringValue ?? "";
            for (const scope of resourceSpans.scopeSpans ?? []) {
              for (const span of scope.spans ?? []) received.push({ traceId: span.traceId, name: span.name, service });
            }
          }
        }
        response.writeHead(200, { "content-type": "application/json" }).end("{}");
      });
    });
    await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve));
    const address = collector.address();
    const port = typeof address === "object" && address ? address.port : 0;
    serve = await startServeProcess({
      ...serveSettings(ctx.redis.url, ctx.dir),
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      // Export within a fraction of a second, not the default 5 s.
      OTEL_BSP_SCHEDULE_DELAY: "100",
    });
  });
  after(async () => {
    serve?.child.kill("SIGTERM");
    await serve?.exited;
    await new Promise<void>((resolve) => (collector ? collector.close(() => resolve()) : resolve()));
  });

  test("a traced Submit's spans reach the OTLP collector, in the caller's trace, from service tollgate", async () => {
    const client = createTollgateClient({ baseUrl: `http://127.0.0.1:${serve.port}` });
    await client.submit({ userId: "otlp" }, { headers: { traceparent: TRACEPARENT } });
    const names = await pollUntil(
      "the Submit and attempt spans to be exported",
      () => {
        const spans = received.filter((span) => span.traceId === CALLER_TRACE);
        const seen = new Set(spans.map((span) => span.name));
        return seen.has("tollgate.v1.TaskService/Submit") && seen.has("tollgate.task.attempt") ? spans : undefined;
      },
      { timeoutMs: 20_000 },
    );
    for (const span of names) assert.equal(span.service, "tollgate");
    assert.match(serve.output(), /tracing: spans exported over OTLP/);
  });
});
