// npm run bench:workers [-- --users 2000 --in-flight 50 --concurrency 64]
//
// Tasks run by a worker over WorkerService (issue 18) on a real `tollgate
// serve` (2 processes, default policy): one runWorker (the library's worker,
// a no-op handler) for kind "remote", and N users each submitting one task of
// that kind, `--in-flight` Submits at a time. A task for a worker is queued
// at Submit, parked by a server's claim and claimed by the worker's lane, so
// the figure to watch is the time from Submit's answer to the worker's
// handler being called (p50/p90/p99/max; a task of the server's own kind
// starts at Submit), and the tasks the worker ran per second.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { runWorker } from "../src/client/worker.js";
import { TestRedis } from "../test/support/redis.js";
import { startServeProcess } from "../test/support/serve-process.js";
import { TaskService } from "../gen/ts/tollgate/v1/task_service_pb.js";
import { percentile } from "./drain.js";
import { sleep, waitFor } from "./processes.js";

interface Latency {
  readonly tasks: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

function latency(ms: number[]): Latency {
  const sorted = [...ms].sort((a, b) => a - b);
  return {
    tasks: sorted.length,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted.at(-1) ?? 0,
  };
}

/** Runs `submit` for each user, `inFlight` at a time. */
async function forEachUser(users: number, inFlight: number, submit: (user: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < users) await submit(next++);
    }),
  );
}

export async function benchWorkers(users: number, inFlight: number, concurrency: number) {
  const redis = await TestRedis.start();
  const dataDir = await mkdtemp(join(tmpdir(), "tollgate-bench-workers-"));
  const server = await startServeProcess({
    TOLLGATE_HOST: "127.0.0.1",
    TOLLGATE_PORT: "0",
    TOLLGATE_REDIS_URL: redis.url,
    TOLLGATE_DATA_DIR: dataDir,
  });
  const baseUrl = `http://127.0.0.1:${server.port}`;
  const received = new Map<string, number>();
  const worker = runWorker({
    baseUrl,
    kinds: ["remote"],
    concurrency,
    handler: (task) => {
      received.set(task.taskId, Date.now());
    },
  });
  try {
    const client = createClient(TaskService, createGrpcTransport({ baseUrl }));
    await sleep(500); // the worker's hello
    const answered = new Map<string, number>();
    const began = Date.now();
    await forEachUser(users, inFlight, async (user) => {
      const { taskId } = await client.submit({ userId: `remote-${user}`, kind: "remote" });
      answered.set(taskId, Date.now());
    });
    await waitFor(async () => received.size >= users, 120_000);
    const ranFor = Math.max(...received.values()) - began;
    const remote = latency([...answered].map(([taskId, at]) => (received.get(taskId) ?? Infinity) - at));

    return { remote, perSecond: (users * 1_000) / ranFor };
  } finally {
    await worker.stop();
    server.child.kill("SIGTERM");
    await server.exited;
    await redis.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      users: { type: "string", default: "2000" },
      "in-flight": { type: "string", default: "50" },
      concurrency: { type: "string", default: "64" },
    },
  });
  const figures = await benchWorkers(Number(values.users), Number(values["in-flight"]), Number(values.concurrency));
  const show = (l: Latency) => `p50 ${l.p50} ms, p90 ${l.p90} ms, p99 ${l.p99} ms, max ${l.max} ms`;
  console.log(
    `workers: ${figures.remote.tasks} users, one task each of a worker's kind (runWorker, concurrency ${values.concurrency})`,
  );
  console.log(`  Submit's answer to the worker's handler: ${show(figures.remote)}`);
  console.log(`  tasks the worker ran per second, from the first Submit: ${Math.round(figures.perSecond)}`);
}
