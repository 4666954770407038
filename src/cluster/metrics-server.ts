import { createServer } from "node:http";
import { AggregatorRegistry } from "prom-client";
import type { Logger } from "../logger.js";

export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

/** GET /metrics on the primary: every worker's metrics, aggregated over IPC. */
export async function startMetricsServer(host: string, port: number, logger: Logger): Promise<MetricsServer> {
  const registry = new AggregatorRegistry();
  const server = createServer((request, response) => {
    if (request.method !== "GET" || request.url?.split("?")[0] !== "/metrics") {
      response.writeHead(404, { "content-type": "text/plain" }).end("not found; try GET /metrics\n");
      return;
    }
    registry.clusterMetrics().then(
      (text) => response.writeHead(200, { "content-type": registry.contentType }).end(text),
      (error: unknown) => {
        logger.warn({ error: (error as Error).message }, "could not collect metrics");
        response.writeHead(503, { "content-type": "text/plain" }).end("metrics unavailable\n");
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error) => reject(new Error(`cannot serve metrics on ${host}:${port}: ${error.message}`)));
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  const bound = typeof address === "object" && address ? address.port : port;
  logger.info({ port: bound }, "metrics at /metrics");
  return {
    port: bound,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
