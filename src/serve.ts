import cluster from "node:cluster";
import type { Config } from "./config.js";

/**
 * `tollgate serve`: a node:cluster primary that forks TOLLGATE_WORKERS
 * workers sharing the gRPC port (see cluster-primary.ts), or, in a forked
 * worker, that worker's server.
 */
export async function serve(config: Config): Promise<void> {
  // Each role loads only its own modules: the primary no gRPC server, a worker
  // no embedded Redis or metrics endpoint.
  if (cluster.isPrimary) await (await import("./cluster/primary.js")).runPrimary(config);
  else await (await import("./cluster/worker.js")).runWorker(config);
}
