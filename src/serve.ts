import cluster from "node:cluster";
import { runPrimary } from "./cluster/primary.js";
import { runWorker } from "./cluster/worker.js";
import type { Config } from "./config.js";

/**
 * `tollgate serve`: a node:cluster primary that forks TOLLGATE_WORKERS
 * workers sharing the gRPC port (see cluster-primary.ts), or, in a forked
 * worker, that worker's server.
 */
export async function serve(config: Config): Promise<void> {
  if (cluster.isPrimary) await runPrimary(config);
  else await runWorker(config);
}
