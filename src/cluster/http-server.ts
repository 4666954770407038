import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { AggregatorRegistry } from "prom-client";
import type { Logger } from "../logger.js";
import { serveAsset, type Asset } from "./dashboard-assets.js";

export interface HttpServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Largest request a browser's call may send; the workers apply their own limits after. */
const READ_MAX_BYTES = 8 * 1024 * 1024;

/**
 * The primary's HTTP port: the dashboard at / (dashboard-assets.ts), GET
 * /metrics (every worker's metrics, aggregated over IPC), and the API for
 * browsers (Connect protocol and gRPC-Web, web-api.ts).
 */
export async function startHttpServer(
  host: string,
  port: number,
  logger: Logger,
  api: (router: ConnectRouter) => void,
  dashboard: ReadonlyMap<string, Asset>,
): Promise<HttpServer> {
  const registry = new AggregatorRegistry();
  const metrics = (response: ServerResponse): void => {
    registry.clusterMetrics().then(
      (text) => response.writeHead(200, { "content-type": registry.contentType }).end(text),
      (error: unknown) => {
        logger.warn({ error: (error as Error).message }, "could not collect metrics");
        response.writeHead(503, { "content-type": "text/plain" }).end("metrics unavailable\n");
      },
    );
  };
  const rpc = connectNodeAdapter({
    routes: api,
    readMaxBytes: READ_MAX_BYTES,
    fallback: (_request, response) => {
      response.writeHead(404, { "content-type": "text/plain" });
      response.end("not found; try GET / (the dashboard), GET /metrics, or POST /tollgate.v1.TaskService/<method>\n");
    },
  });
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const path = request.url?.split("?")[0] ?? "/";
    if (request.method === "GET" && path === "/metrics") return metrics(response);
    if (serveAsset(dashboard, path, request, response)) return;
    rpc(request, response);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error) => reject(new Error(`cannot serve HTTP on ${host}:${port}: ${error.message}`)));
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  const bound = typeof address === "object" && address ? address.port : port;
  logger.info({ port: bound }, "HTTP: the dashboard at /, /metrics, and the API for browsers (Connect, gRPC-Web)");
  return {
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        // WatchQueue streams would hold close() open: end them with the server.
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
