// npx tsx bench/replica-acks.ts [--submits 3000] [--concurrency 32]
//
// What TOLLGATE_REPLICA_ACKS=1 costs: Submit latency (one at a time) and
// throughput (many in flight) through one in-process server, with acks 0 and
// 1, on a local master and its replica (two private redis-servers). Tasks
// only queue (concurrency 0), over many users, so the figures are Submit's
// own. Printed as a table for docs/operations.md.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { freePort, spawnRedisServer, type RedisServerProcess } from "../src/redis/embedded-redis.js";
import { startTestServer } from "../test/support/server.js";

const { values } = parseArgs({
  options: { submits: { type: "string", default: "3000" }, concurrency: { type: "string", default: "32" } },
});
const SUBMITS = Number(values.submits);
const CONCURRENCY = Number(values.concurrency);
const SEQUENTIAL = 500;

async function redisServer(dir: string, port: number, extra: string[] = []): Promise<RedisServerProcess> {
  return spawnRedisServer(["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", ...extra]);
}

const percentile = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;

async function measure(url: string, acks: number): Promise<string> {
  const tollgate = await startTestServer(url, {
    TOLLGATE_REPLICA_ACKS: String(acks),
    TOLLGATE_CONCURRENCY: "0",
    TOLLGATE_RATE_LIMITS: "1000/1s",
    TOLLGATE_MAX_BACKLOG: "1000000",
  });
  try {
    let user = 0;
    const submit = () => tollgate.client.submit({ userId: `u${user++ % 1000}` });
    for (let i = 0; i < 200; i++) await submit(); // warm-up
    const latencies: number[] = [];
    for (let i = 0; i < SEQUENTIAL; i++) {
      const start = process.hrtime.bigint();
      await submit();
      latencies.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
    latencies.sort((a, b) => a - b);
    let left = SUBMITS;
    const start = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (left-- > 0) await submit();
      }),
    );
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    return `| ${acks} | ${percentile(latencies, 0.5).toFixed(2)} ms | ${percentile(latencies, 0.99).toFixed(2)} ms | ${Math.round(SUBMITS / seconds)}/s |`;
  } finally {
    await tollgate.close();
  }
}

const dir = await mkdtemp(join(tmpdir(), "tollgate-bench-acks-"));
const masterPort = await freePort();
const master = await redisServer(join(dir, ""), masterPort, ["--repl-diskless-sync-delay", "0"]);
const replicaDir = await mkdtemp(join(dir, "replica-"));
const replica = await redisServer(replicaDir, await freePort(), ["--replicaof", "127.0.0.1", String(masterPort)]);
try {
  const probe = new Redis(`redis://127.0.0.1:${masterPort}`);
  for (;;) {
    await probe.set("bench-probe", "1");
    if ((await probe.wait(1, 100)) === 1) break;
  }
  probe.disconnect();
  const url = `redis://127.0.0.1:${masterPort}`;
  const rows: string[] = [];
  for (const acks of [0, 1, 0, 1]) rows.push(await measure(url, acks));
  console.log(
    `Submit, ${SEQUENTIAL} one at a time (latency) and ${SUBMITS} with ${CONCURRENCY} in flight (throughput):`,
  );
  console.log("| replica acks | p50 | p99 | throughput |\n| --- | --- | --- | --- |");
  for (const row of rows) console.log(row);
} finally {
  await replica.stop();
  await master.stop();
  await rm(dir, { recursive: true, force: true });
}
process.exit(0);
