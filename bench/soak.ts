// npm run bench:soak [-- --seconds 300 --rate 200 --watchers 50]
//
// Steady load on a real `tollgate serve` (2 workers, private Redis): Submits
// at a fixed rate spread over 100 users, with WatchQueue streams following
// their queues the whole time. Samples every process's resident memory every
// 10 s and reports its growth after a warm-up (the first fifth of the run).
// Target: under 10%.
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
  },
});
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
});
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
const samples: { at: number; rssKb: number }[] = [];
const sampler = setInterval(() => {
  void Promise.all(pids().map(rssKb)).then((all) => {
    const total = all.reduce((a, b) => a + b, 0);
    samples.push({ at: (Date.now() - started) / 1000, rssKb: total });
    console.log(
      `t=${Math.round((Date.now() - started) / 1000)}s rss=${(total / 1024).toFixed(1)} MB submitted=${submitted} failed=${failed}`,
    );
  });
}, 10_000);

// Fixed-rate load: every 50 ms, rate/20 Submits.
const perTick = Math.max(1, Math.round(rate / 20));
while (Date.now() - started < seconds * 1000) {
  const tick = Date.now();
  await Promise.all(
    Array.from({ length: perTick }, async (_, k) => {
      try {
        await clients[k % clients.length]!.submit({ userId: `soak-${(submitted + k) % 100}` });
        submitted++;
      } catch {
        failed++;
      }
    }),
  );
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, 50 - (Date.now() - tick))));
}
clearInterval(sampler);
stop.abort();
const watcherMessages = (await Promise.all(watchers)).reduce((a, b) => a + b, 0);
server.child.kill("SIGTERM");
const exitCode = await server.exited;
await redis.stop();
await rm(dataDir, { recursive: true, force: true });

const warm = samples.filter((s) => s.at >= seconds / 5);
const first = warm[0]?.rssKb ?? 0;
const last = warm.at(-1)?.rssKb ?? 0;
const growth = first === 0 ? 0 : ((last - first) / first) * 100;
console.log(`soak: ${seconds} s at ${rate} Submits/s with ${watcherCount} watchers following`);
console.log(`  submitted ${submitted}, failed ${failed}, watcher messages ${watcherMessages}, exit ${exitCode}`);
console.log(
  `  resident memory (primary + workers) after warm-up ${(first / 1024).toFixed(1)} MB, at the end ${(last / 1024).toFixed(1)} MB: ` +
    `growth ${growth.toFixed(1)}% (target < 10%) ${growth < 10 ? "met" : "MISSED"}`,
);
