// One process of the BullMQ peer that `npm run bench` measures beside
// Tollgate (bench/bullmq.ts starts them; a dev dependency, used here only):
//
//   node --import tsx bench/bullmq-process.ts worker <redis-url> <queue> <concurrency>
//     A BullMQ Worker whose processor does nothing. Prints "ready" once it
//     is connected; SIGTERM closes it (waiting for its jobs) and exits.
//   node --import tsx bench/bullmq-process.ts producer <redis-url> <queue>
//     Reads one JSON line per run on stdin, {"seconds": S, "inFlight": N},
//     adds no-op jobs with `queue.add` for S seconds, N adds in flight (as
//     the load generator keeps N Submits in flight), and answers one JSON
//     line {"added": n, "seconds": s}. Prints "ready" first; exits when stdin
//     closes.
//
// Both are long-lived, so the CPU the bench reads from /proc during a run is
// the run's, not the process's start.
import { createInterface } from "node:readline";
import { Queue, Worker } from "bullmq";

const [role, url, queueName, concurrencyText] = process.argv.slice(2);
if (!url || !queueName) throw new Error("usage: bullmq-process.ts worker|producer <redis-url> <queue> [concurrency]");
const { hostname, port } = new URL(url);
// BullMQ's workers block on Redis and must not give up on a command (its documented setting).
const connection = { host: hostname, port: Number(port), maxRetriesPerRequest: null };

if (role === "worker") {
  const worker = new Worker(queueName, async () => {}, {
    connection,
    concurrency: Number(concurrencyText ?? "50"),
  });
  worker.on("error", (error) => console.error(error.message));
  await worker.waitUntilReady();
  console.log("ready");
  process.on("SIGTERM", () => {
    void worker.close().then(() => process.exit(0));
  });
} else if (role === "producer") {
  const queue = new Queue(queueName, { connection });
  await queue.waitUntilReady();
  console.log("ready");
  let n = 0;
  for await (const line of createInterface({ input: process.stdin })) {
    const { seconds, inFlight } = JSON.parse(line) as { seconds: number; inFlight: number };
    const t0 = performance.now();
    const until = t0 + seconds * 1000;
    let added = 0;
    const lane = async (): Promise<void> => {
      while (performance.now() < until) {
        await queue.add("noop", { user: `bench-${n++}` });
        added++;
      }
    };
    await Promise.all(Array.from({ length: inFlight }, lane));
    console.log(JSON.stringify({ added, seconds: (performance.now() - t0) / 1000 }));
  }
  await queue.close();
  process.exit(0);
} else {
  throw new Error(`unknown role ${role}`);
}
