// The peer in `npm run bench` (section bullmq): BullMQ 5 adding and processing
// no-op jobs on a private redis-server (same settings as Tollgate's: the
// append-only file on), with `workers` worker processes (separate node
// processes, as Tollgate's cluster workers are) and one producer process
// keeping `inFlight` adds in flight, as the load generator keeps Submits in
// flight. Each round adds jobs for `seconds` seconds and ends when the last
// of them has completed; jobs per second is that count over that time, and
// the CPU per job of Redis, the workers and the producer is read from /proc
// over the same span. Jobs are kept when completed (BullMQ's default; Tollgate
// keeps a finished task's record for its retention too).
import { cpus } from "node:os";
import type { Redis } from "ioredis";
import { redisServerPid, sleep, spawnBenchScript, startRedis, treeCpuSeconds, type BenchChild } from "./processes.js";

export interface BullmqRound {
  readonly jobs: number;
  readonly seconds: number;
  readonly jobsPerSecond: number;
  /** CPU per job, µs. */
  readonly redisUs: number;
  readonly workersUs: number;
  readonly producerUs: number;
  readonly totalUs: number;
}

export interface BullmqFigures {
  readonly version: string;
  readonly workers: number;
  readonly concurrency: number;
  readonly rounds: readonly BullmqRound[];
}

export interface BullmqOptions {
  readonly rounds: number;
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly workers: number;
  /** Adds in flight at once (the load generator's calls in flight). */
  readonly inFlight: number;
  /** Jobs each worker runs at once. */
  readonly concurrency: number;
  readonly log: (message: string) => void;
}

const QUEUE = "bench";

export async function benchBullmq(options: BullmqOptions): Promise<BullmqFigures> {
  const { version } = (await import("bullmq/package.json", { with: { type: "json" } })).default as {
    version: string;
  };
  options.log(
    `bullmq: BullMQ ${version}, ${options.workers} worker processes (concurrency ${options.concurrency} each), ` +
      `one producer with ${options.inFlight} adds in flight, ${options.rounds} rounds of ${options.seconds} s`,
  );
  const redis = await startRedis();
  const plain: Redis = redis.client();
  const children: BenchChild[] = [];
  const rounds: BullmqRound[] = [];
  try {
    const redisPid = redisServerPid(redis.port);
    if (redisPid === undefined) throw new Error("bullmq: no redis-server pid");
    const workers = Array.from({ length: options.workers }, () =>
      spawnBenchScript("./bullmq-process.ts", ["worker", redis.url, QUEUE, String(options.concurrency)]),
    );
    children.push(...workers);
    const producer = spawnBenchScript("./bullmq-process.ts", ["producer", redis.url, QUEUE]);
    children.push(producer);
    await Promise.all(children.map((child) => child.printed(/^ready$/m)));
    const completed = (): Promise<number> => plain.zcard(`bull:${QUEUE}:completed`);

    const run = async (seconds: number): Promise<BullmqRound> => {
      const done0 = await completed();
      const cpu = (): [number, number, number] => [
        treeCpuSeconds(redisPid),
        workers.reduce((total, w) => total + treeCpuSeconds(w.child.pid!), 0),
        treeCpuSeconds(producer.child.pid!),
      ];
      const [redis0, workers0, producer0] = cpu();
      const t0 = performance.now();
      const answer = producer.printed(/^(\{.*\})$/m, (seconds + 60) * 1000);
      producer.child.stdin!.write(`${JSON.stringify({ seconds, inFlight: options.inFlight })}\n`);
      const { added } = JSON.parse((await answer)[1]!) as { added: number };
      const until = performance.now() + 60_000;
      while ((await completed()) < done0 + added) {
        if (performance.now() > until) throw new Error("bullmq: jobs not all completed 60 s after the last add");
        await sleep(10);
      }
      const elapsed = (performance.now() - t0) / 1000;
      const [redis1, workers1, producer1] = cpu();
      const per = (s: number): number => (1e6 * s) / added;
      const redisUs = per(redis1 - redis0);
      const workersUs = per(workers1 - workers0);
      const producerUs = per(producer1 - producer0);
      return {
        jobs: added,
        seconds: elapsed,
        jobsPerSecond: added / elapsed,
        redisUs,
        workersUs,
        producerUs,
        totalUs: redisUs + workersUs + producerUs,
      };
    };
    await run(options.warmupSeconds);
    for (let round = 1; round <= options.rounds; round++) rounds.push(await run(options.seconds));
  } finally {
    plain.disconnect();
    for (const child of children) {
      child.child.stdin?.end();
      await child.stop();
    }
    await redis.stop();
  }
  return { version, workers: options.workers, concurrency: options.concurrency, rounds };
}

// Standalone: npx tsx bench/bullmq.ts [rounds] [seconds]
if (import.meta.url === `file://${process.argv[1]}`) {
  const figures = await benchBullmq({
    rounds: Number(process.argv[2] ?? "2"),
    seconds: Number(process.argv[3] ?? "8"),
    warmupSeconds: 2,
    workers: cpus().length,
    inFlight: 50,
    concurrency: 50,
    log: (message) => console.error(message),
  });
  for (const r of figures.rounds)
    console.log(
      `${r.jobs} jobs in ${r.seconds.toFixed(1)} s: ${r.jobsPerSecond.toFixed(0)}/s; CPU per job: Redis ${r.redisUs.toFixed(0)} µs, ` +
        `workers ${r.workersUs.toFixed(0)} µs, producer ${r.producerUs.toFixed(0)} µs, total ${r.totalUs.toFixed(0)} µs`,
    );
  process.exit(0);
}
