// npm run bench:soak [-- --seconds 300 --rate 200 --watchers 50 --new-users 100 --retention 30s]
//
// Steady load on a real `tollgate serve` (2 workers, private Redis): Submits
// at a fixed rate spread over 100 users, with WatchQueue streams following
// their queues the whole time; with --new-users, also that many users a
// second never seen before, one task each (churn), under TOLLGATE_RETENTION
// --retention. Samples every process's resident memory, and Redis'
// used_memory, RSS and key count, every 10 s and reports their growth after
// a warm-up (the first fifth of the run, and at least twice the retention,
// so that users come and go at the same rate). Target: under 10%.
import { readFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { TestRedis } from "../test/support/redis.js";
import { startServeProcess } from "../test/support/serve-process.js";
import { TaskService } from "../gen/ts/tollgate/v1/task_service_pb.js";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "300" },
    rate: { type: "string", default: "200" },
    watchers: { type: "string", default: "50" },
    "new-users": { type: "string", default: "0" },
    retention: { type: "string", default: "30s" },
  },
});
const newUsersPerSecond = Number(values["new-users"]);
const retentionText = values.retention!;
const retentionSeconds = Number(/^(\d+)s?$/.exec(retentionText)?.[1] ?? NaN);
if (!Number.isFinite(retentionSeconds)) throw new Error(`--retention: give seconds, like 30s (got ${retentionText})`);
const seconds = Number(values.seconds);
const rate = Number(values.rate);
const watcherCount = Number(values.watchers);

async function rssKb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

const redis = await TestRedis.start();
const dataDir = await mkdtemp(join(tmpdir(), "tollgate-soak-"));
const server = await startServeProcess({
  TOLLGATE_HOST: "127.0.0.1",
  TOLLGATE_PORT: "0",
  TOLLGATE_WORKERS: "2",
  TOLLGATE_REDIS_URL: redis.url,
  TOLLGATE_DATA_DIR: dataDir,
  TOLLGATE_RATE_LIMITS: "5/1s,200/1m",
  TOLLGATE_RETENTION: retentionText,
});
const plain = redis.client();
async function redisMemory(): Promise<{ usedMb: number; rssMb: number; keys: number }> {
  const info = await plain.info("memory");
  const field = (name: string): number => Number(new RegExp(`^${name}:(\\d+)`, "m").exec(info)?.[1] ?? NaN) / 2 ** 20;
  return { usedMb: field("used_memory"), rssMb: field("used_memory_rss"), keys: await plain.dbsize() };
}
const clients = Array.from({ length: 4 }, () =>
  createClient(TaskService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${server.port}` })),
);
const pids = (): number[] => {
  const found = new Set<number>([server.child.pid!]);
  for (const match of server.output().matchAll(/"pid":(\d+),"port":\d+,"msg":"worker serving"/g))
    found.add(Number(match[1]));
  return [...found];
};

const stop = new AbortController();
const watchers = Array.from({ length: watcherCount }, async (_, i) => {
  let messages = 0;
  try {
    for await (const _message of clients[i % clients.length]!.watchQueue(
      { userId: `soak-${i % 100}`, follow: true },
      { signal: stop.signal },
    )) {
      messages++;
    }
  } catch {
    // aborted at the end
  }
  return messages;
});

let submitted = 0;
let failed = 0;
const started = Date.now();
let newUsers = 0;
const samples: { at: number; rssKb: number; redisUsedMb: number; redisRssMb: number; keys: number }[] = [];
const sampler = setInterval(() => {
  void Promise.all([Promise.all(pids().map(rssKb)), redisMemory()]).then(([all, memory]) => {
    const total = all.reduce((a, b) => a + b, 0);
    samples.push({
      at: (Date.now() - started) / 1000,
      rssKb: total,
      redisUsedMb: memory.usedMb,
      redisRssMb: memory.rssMb,
      keys: memory.keys,
    });
    console.log(
      `t=${Math.round((Date.now() - started) / 1000)}s rss=${(total / 1024).toFixed(1)} MB ` +
        `redis used=${memory.usedMb.toFixed(2)} MB rss=${memory.rssMb.toFixed(1)} MB keys=${memory.keys} ` +
        `submitted=${submitted} new users=${newUsers} failed=${failed}`,
    );
  });
}, 10_000);

// Fixed-rate load: every 50 ms, rate/20 Submits, and new-users/20 users never seen before.
const perTick = Math.max(1, Math.round(rate / 20));
const newPerTick = newUsersPerSecond / 20;
let newDue = 0;
while (Date.now() - started < seconds * 1000) {
  const tick = Date.now();
  newDue += newPerTick;
  const fresh = Math.floor(newDue);
  newDue -= fresh;
  await Promise.all([
    ...Array.from({ length: perTick }, async (_, k) => {
      try {
        await clients[k % clients.length]!.submit({ userId: `soak-${(submitted + k) % 100}` });
        submitted++;
      } catch {
        failed++;
      }
    }),
    ...Array.from({ length: fresh }, async (_, k) => {
      try {
        await clients[k % clients.length]!.submit({ userId: `new-${newUsers + k}` });
      } catch {
        failed++;
      }
    }),
  ]);
  newUsers += fresh;
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, 50 - (Date.now() - tick))));
}
clearInterval(sampler);
stop.abort();
const watcherMessages = (await Promise.all(watchers)).reduce((a, b) => a + b, 0);
plain.disconnect();
server.child.kill("SIGTERM");
const exitCode = await server.exited;
await redis.stop();
await rm(dataDir, { recursive: true, force: true });

const warmUp = Math.max(seconds / 5, newUsersPerSecond > 0 ? 2 * retentionSeconds : 0);
const warm = samples.filter((s) => s.at >= warmUp);
const growthOf = (name: string, value: (s: (typeof samples)[number]) => number, unit: (v: number) => string): void => {
  const first = warm[0] ? value(warm[0]) : 0;
  const last = warm.at(-1) ? value(warm.at(-1)!) : 0;
  const growth = first === 0 ? 0 : ((last - first) / first) * 100;
  console.log(
    `  ${name} after warm-up ${unit(first)}, at the end ${unit(last)}: ` +
      `growth ${growth.toFixed(1)}% (target < 10%) ${growth < 10 ? "met" : "MISSED"}`,
  );
};
console.log(
  `soak: ${seconds} s at ${rate} Submits/s with ${watcherCount} watchers following` +
    (newUsersPerSecond > 0 ? `, and ${newUsersPerSecond} new users a second (retention ${retentionText})` : ""),
);
console.log(
  `  submitted ${submitted} (+ ${newUsers} new users' tasks), failed ${failed}, watcher messages ${watcherMessages}, exit ${exitCode}; warm-up ${warmUp.toFixed(0)} s`,
);
growthOf(
  "resident memory (primary + workers)",
  (s) => s.rssKb,
  (kb) => `${(kb / 1024).toFixed(1)} MB`,
);
growthOf(
  "Redis used_memory",
  (s) => s.redisUsedMb,
  (mb) => `${mb.toFixed(2)} MB`,
);
growthOf(
  "Redis RSS",
  (s) => s.redisRssMb,
  (mb) => `${mb.toFixed(1)} MB`,
);
growthOf(
  "Redis keys",
  (s) => s.keys,
  (n) => String(n),
);
