// npm run bench:drain [-- --users 5000 --tasks 3 --policy 1/1s,2/3s --concurrency 256]
//
// N users submit M tasks each, back to back, to a real `tollgate serve` (its
// own process, so the load generator does not share its event loop); the
// server drains them. Then every user's starts, as Redis recorded them, are
// replayed against the policy: start lateness (start minus the earliest
// moment the policy allowed it, for every task that was queued) p50/p99/max,
// window violations (starts the policy did not allow), and Redis commands per
// started task.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { Cluster, Redis } from "ioredis";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createKeys, sumOver } from "../src/redis/keys.js";
import { parseRatePolicy } from "../src/core/rate-policy.js";
import { TestRedis } from "../test/support/redis.js";
import { startServeProcess } from "../test/support/serve-process.js";
import { checkStarts } from "../test/support/task-log.js";
import { Disposition, TaskService } from "../gen/ts/tollgate/v1/task_service_pb.js";

export interface DrainFigures {
  readonly users: number;
  readonly tasks: number;
  readonly queued: number;
  readonly latenessP50: number;
  readonly latenessP99: number;
  readonly latenessMax: number;
  readonly violations: number;
  readonly commandsPerStart: number;
  readonly seconds: number;
  /** From the first Submit to the last one's answer. */
  readonly submitSeconds: number;
  /** Lateness of the queued tasks the policy allowed only after the last Submit was answered: the drain alone. */
  readonly afterSubmits: { readonly tasks: number; readonly p50: number; readonly p99: number; readonly max: number };
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** A Redis (standalone or Cluster) the caller started and stops, and how to count the commands it ran. */
export interface DrainRedis {
  readonly url: string;
  client(): Redis | Cluster;
  commandCalls(): Promise<number>;
}

interface Submitted {
  readonly taskId: string;
  readonly queued: boolean;
}

export async function benchDrain(
  users: number,
  tasksPerUser: number,
  policyText: string,
  concurrency: number,
  on?: DrainRedis,
): Promise<DrainFigures> {
  const own = on ? undefined : await TestRedis.start();
  const redis: DrainRedis = on ?? own!;
  const dataDir = await mkdtemp(join(tmpdir(), "tollgate-bench-"));
  const server = await startServeProcess({
    TOLLGATE_HOST: "127.0.0.1",
    TOLLGATE_PORT: "0",
    TOLLGATE_REDIS_URL: redis.url,
    TOLLGATE_DATA_DIR: dataDir,
    TOLLGATE_RATE_LIMITS: policyText,
    TOLLGATE_CONCURRENCY: String(concurrency),
  });
  const plain = redis.client();
  const keys = createKeys();
  try {
    const client = createClient(TaskService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${server.port}` }));
    const commandsBefore = await redis.commandCalls();
    const started = Date.now();
    const submitted: Submitted[][] = Array.from({ length: users }, () => []);
    // Each user's tasks back to back, 200 calls in flight.
    const jobs = Array.from({ length: users * tasksPerUser }, (_, i) => Math.floor(i / tasksPerUser));
    for (let i = 0; i < jobs.length; i += 200) {
      const wave = jobs.slice(i, i + 200);
      const answers = await Promise.all(wave.map((user) => client.submit({ userId: `bench-${user}` })));
      for (const [k, answer] of answers.entries()) {
        submitted[wave[k]!]!.push({ taskId: answer.taskId, queued: answer.disposition === Disposition.QUEUED });
      }
    }
    const submitsEnded = Date.now();
    for (;;) {
      const [due, leases] = await Promise.all([
        sumOver(keys, (p) => plain.zcard(p.dueUsers)),
        sumOver(keys, (p) => plain.zcard(p.leases)),
      ]);
      if (due === 0 && leases === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const seconds = (Date.now() - started) / 1000;
    const commands = (await redis.commandCalls()) - commandsBefore;

    const policy = parseRatePolicy(policyText);
    const lateness: number[] = [];
    const latenessAfter: number[] = [];
    let violations = 0;
    let queued = 0;
    for (let first = 0; first < users; first += 500) {
      const batch = submitted.slice(first, first + 500);
      // Not a pipeline: on a Cluster one may not span slots. Sent together all the same.
      const replies = await Promise.all(
        batch.flatMap((tasks) =>
          tasks.map((task) => plain.hmget(keys.forTask(task.taskId)!.task(task.taskId), "st", "sub")),
        ),
      );
      let at = 0;
      for (const tasks of batch) {
        const records = tasks.map((task) => {
          const [st = "0", sub = "0"] = replies[at++] ?? [];
          return { ...task, startedAt: Number(st), submittedAt: Number(sub) };
        });
        // Submit order is start order for one user; replay them in it.
        const check = checkStarts(
          policy,
          records.map((r) => r.startedAt),
          0,
          0,
        );
        violations += check.violations;
        records.forEach((record, k) => {
          if (!record.queued) return;
          queued++;
          // Not before it was submitted, nor before the policy allowed it.
          const allowedBy = record.startedAt - check.lateness[k]!;
          const allowed = Math.max(allowedBy, record.submittedAt);
          lateness.push(record.startedAt - allowed);
          if (allowed > submitsEnded) latenessAfter.push(record.startedAt - allowed);
        });
      }
    }
    const sorted = lateness.sort((a, b) => a - b);
    const sortedAfter = latenessAfter.sort((a, b) => a - b);
    return {
      users,
      tasks: users * tasksPerUser,
      queued,
      latenessP50: percentile(sorted, 50),
      latenessP99: percentile(sorted, 99),
      latenessMax: sorted.at(-1) ?? 0,
      violations,
      commandsPerStart: commands / (users * tasksPerUser),
      seconds,
      submitSeconds: (submitsEnded - started) / 1000,
      afterSubmits: {
        tasks: sortedAfter.length,
        p50: percentile(sortedAfter, 50),
        p99: percentile(sortedAfter, 99),
        max: sortedAfter.at(-1) ?? 0,
      },
    };
  } finally {
    plain.disconnect();
    server.child.kill("SIGTERM");
    await server.exited;
    await own?.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

export function printDrain(figures: DrainFigures, policyText: string): void {
  console.log(
    `drain: ${figures.users} users x ${figures.tasks / figures.users} tasks under ${policyText}, ` +
      `${figures.queued} queued, drained in ${figures.seconds.toFixed(1)} s`,
  );
  console.log(
    `  start lateness p50 ${figures.latenessP50} ms, p99 ${figures.latenessP99} ms (target <= 50), max ${figures.latenessMax} ms`,
  );
  console.log(
    `  of them allowed to start only after the last Submit was answered (${figures.submitSeconds.toFixed(1)} s in): ` +
      `${figures.afterSubmits.tasks}, lateness p50 ${figures.afterSubmits.p50} ms, p99 ${figures.afterSubmits.p99} ms, ` +
      `max ${figures.afterSubmits.max} ms`,
  );
  console.log(`  window violations ${figures.violations} (target 0)`);
  console.log(`  Redis commands per started task ${figures.commandsPerStart.toFixed(1)} (inside scripts included)`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      users: { type: "string", default: "5000" },
      tasks: { type: "string", default: "3" },
      policy: { type: "string", default: "1/1s,2/3s" },
      concurrency: { type: "string", default: "256" },
    },
  });
  const figures = await benchDrain(
    Number(values.users),
    Number(values.tasks),
    values.policy!,
    Number(values.concurrency),
  );
  printDrain(figures, values.policy!);
}
