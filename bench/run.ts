// npm run bench [-- --seconds 8 --rounds 2 --loadgen auto|ghz|node --only throughput,bullmq,redis,memory,drain,idle,start,profile --profile]
// npm run bench -- --only cluster,capacity,churn   (not in the default run: about 3 minutes more)
// npm run bench -- --drain-users 50000              (the drain at issue 16's scale: about 3 minutes more)
//
// Every figure DESIGN.md asks to measure, in one run on this machine, each beside
// its target and, where one exists, as a ratio to a baseline measured in the
// same run:
//   throughput  Submit through `tollgate serve` (default worker count) against
//               bench/bare-server.ts (same worker count, empty answer), same
//               load generator, two mixes: users spread (most start now) and
//               few users (most queue); plus Tollgate with a no-op handler
//               (bench/noop-handler.mjs) to tell its cost from the built-in
//               handler's. All servers are up at once and measured in
//               interleaved rounds; the best round of each is shown (noise on
//               a shared machine only ever lowers a figure), every round in
//               the notes, with the CPU per Submit of server, Redis and load
//               generator.
//   bullmq      The peer (bench/bullmq.ts): BullMQ 5 adding and processing
//               no-op jobs, one worker process per server worker (2 here), one producer with
//               the load generator's calls in flight, on a private Redis:
//               jobs per second and CPU per job (Redis, workers, producer).
//   redis       Redis round trips and commands per Submit, fast and queued
//               path, from Redis' MONITOR stream (attributed per script).
//   memory      used_memory delta over 100,000 queued tasks, minus payloads.
//   drain       bench/drain.ts at 5,000 users: start lateness and violations.
//   idle        CPU of the serve process tree and Redis commands per second,
//               10,000 users waiting on a one-minute window.
//   start       bench/start.ts: each worker's fork-to-serving time and the
//               idle cluster's memory (primary + 2 workers), 3 starts.
//   churn       (--only churn; about a minute) Redis used_memory before and
//               after 100,000 distinct users (--churn-users) submit one task
//               each and their retention (2 s here) passes: users ever seen
//               must cost nothing, so it must come back to within 1 MB.
//   profile     (--profile) V8 CPU profile of the workers under the start-now
//               mix (bench/cpu-profile.mjs): where their time goes; then,
//               when Linux perf is installed, the same load recorded by perf
//               (bench/perf-profile.ts): on-CPU only, kernel, garbage
//               collection and compiler threads included. V8's profiler
//               samples wall-clock time, so a worker descheduled in a system
//               call counts there; perf's shares are the CPU's.
//   cluster     (--only cluster) bench/cluster.ts: the start-now mix on a
//               standalone Redis and on a 3-master Cluster, interleaved
//               rounds: Submits/s, Redis CPU per Submit per master and in
//               all, commands per Submit, partitions and users per master,
//               and a drain (--cluster-drain-users x 3) on each.
//   capacity    (--only capacity) bench/capacity.ts: Redis CPU and memory of
//               each operation (start-now Submit, queued Submit, start of a
//               queued task; a queued task, an idle user), for
//               docs/capacity.md.
// `tollgate serve` runs as `npm start` runs it: the compiled dist/, built
// first if missing or older than src/ (the notes say what each section ran).
// At the end, the goals of issue 16 ("Performance and footprint") from the
// figures above, each with measured, baseline, ratio and met.
// The load generator is ghz when installed (.ci/run's GO_TOOLS), else
// bench/load.ts. Every process started is stopped, even when interrupted.
import { spawnSync } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { Redis } from "ioredis";
import { freePort } from "../src/redis/embedded-redis.js";
import { createKeys, permanentKeys, sumOver } from "../src/redis/keys.js";
import { LuaScript } from "../src/redis/lua-script.js";
import { benchBullmq, type BullmqFigures, type BullmqRound } from "./bullmq.js";
import { benchCapacity } from "./capacity.js";
import { benchCluster, type Sample } from "./cluster.js";
import { benchDrain, type DrainFigures } from "./drain.js";
import { benchStart, describeStartRun } from "./start.js";
import { pickLoadGenerator, type LoadGenerator, type LoadResult, type LoadSpec } from "./loadgen.js";
import { printProfileSummary, summariseProfiles } from "./profile.js";
import {
  PERF_NODE_OPTIONS,
  perfAvailable,
  printPerfSummary,
  recordPerf,
  removePerfMaps,
  summarisePerf,
} from "./perf-profile.js";
import {
  WORKERS,
  commandStats,
  commandsBetween,
  contention,
  cpuSecondsByPid,
  reapedChildrenCpuSeconds,
  redisServerPid,
  settle,
  sleep,
  startBareServer,
  startRedis,
  startTollgate,
  submittedByDisposition,
  sum,
  treeCpuSeconds,
  treePids,
  usedMemory,
  waitFor,
} from "./processes.js";

const SECTIONS = [
  "throughput",
  "bullmq",
  "redis",
  "memory",
  "drain",
  "idle",
  "start",
  "churn",
  "profile",
  "cluster",
  "capacity",
] as const;
type Section = (typeof SECTIONS)[number];

const { values: flags } = parseArgs({
  options: {
    seconds: { type: "string", default: "8" },
    rounds: { type: "string", default: "2" },
    warmup: { type: "string", default: "2" },
    concurrency: { type: "string", default: "50" },
    connections: { type: "string", default: "10" },
    loadgen: { type: "string", default: process.env.BENCH_LOADGEN ?? "auto" },
    only: { type: "string", default: "throughput,bullmq,redis,memory,drain,idle,start" },
    profile: { type: "boolean", default: false },
    "memory-tasks": { type: "string", default: "100000" },
    "idle-users": { type: "string", default: "10000" },
    "idle-seconds": { type: "string", default: "20" },
    "drain-users": { type: "string", default: "5000" },
    "cluster-drain-users": { type: "string", default: "1000" },
    "bullmq-concurrency": { type: "string", default: "50" },
    "capacity-users": { type: "string", default: "20000" },
    "churn-users": { type: "string", default: "100000" },
  },
});
const SECONDS = Number(flags.seconds);
const WARMUP = Number(flags.warmup);
const CONCURRENCY = Number(flags.concurrency);
const CONNECTIONS = Number(flags.connections);
const ONLY = new Set(flags.only!.split(",").map((s) => s.trim()));
if (flags.profile) ONLY.add("profile");
for (const name of ONLY)
  if (!(SECTIONS as readonly string[]).includes(name)) throw new Error(`--only: unknown section ${name}`);
const enabled = (section: Section): boolean => ONLY.has(section);

/** Users in the queueing mix: each gets ~1 start per second, the rest queue. */
const QUEUE_USERS = 50;
/** Payload of every task in the memory measurement, subtracted from its figure. */
const PAYLOAD_BYTES = 64;
const keys = createKeys();

interface Row {
  readonly figure: string;
  readonly measured: string;
  readonly baseline: string;
  readonly ratio: string;
  readonly target: string;
  readonly met: string;
}
const rows: Row[] = [];
const notes: string[] = [];

/** What the goals of issue 16 are judged on, filled in by the sections that ran. */
const forGoals: {
  tollgate?: Record<Mix, Measured>;
  bare?: Record<Mix, Measured>;
  noop?: Measured;
  bullmq?: BullmqFigures;
  drain?: DrainFigures;
  memory?: { perTask: number; baseline: number };
  idle?: { users: number; cpuPct: number; bareCpuPct: number | undefined };
} = {};

const fmt = (value: number, digits = 0): string =>
  Number.isFinite(value)
    ? value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : "n/a";

function row(
  figure: string,
  measured: number,
  unit: { digits?: number; suffix?: string },
  baseline: number | undefined,
  target: { text: string; met?: (measured: number, ratio: number) => boolean },
): void {
  const digits = unit.digits ?? 0;
  const suffix = unit.suffix ?? "";
  const ratio = baseline === undefined || baseline === 0 ? NaN : measured / baseline;
  rows.push({
    figure,
    measured: `${fmt(measured, digits)}${suffix}`,
    baseline: baseline === undefined ? "—" : `${fmt(baseline, digits)}${suffix}`,
    ratio: Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : "—",
    target: target.text,
    met: target.met ? (target.met(measured, ratio) ? "yes" : "NO") : "—",
  });
}

/** Columns padded to their widest cell, the first left-aligned, the others right-aligned. */
function printColumns<K extends string>(header: Record<K, string>, body: readonly Record<K, string>[]): void {
  const columns = Object.keys(header) as K[];
  const all = [header, ...body];
  const width = (key: K): number => Math.max(...all.map((r) => r[key].length));
  const line = (r: Record<K, string>): string =>
    columns.map((key, i) => (i === 0 ? r[key].padEnd(width(key)) : r[key].padStart(width(key)))).join("  ");
  console.log(line(header));
  console.log(columns.map((key) => "-".repeat(width(key))).join("  "));
  for (const r of body) console.log(line(r));
}

function printTable(): void {
  printColumns(
    { figure: "figure", measured: "measured", baseline: "baseline", ratio: "ratio", target: "target", met: "met?" },
    rows,
  );
}

function spec(target: string, rest: Partial<LoadSpec> & { prefix: string }): LoadSpec {
  return {
    target,
    concurrency: CONCURRENCY,
    connections: CONNECTIONS,
    maxSeconds: 120,
    ...rest,
  };
}

function describeErrors(result: LoadResult): string {
  const entries = Object.entries(result.errors);
  return entries.length === 0 ? "" : ` (errors: ${entries.map(([k, v]) => `${k} ${v}`).join(", ")})`;
}

function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

// ---------------------------------------------------------------- throughput

interface Measured {
  readonly result: LoadResult;
  /** CPU per OK Submit, µs: the server's processes, Redis, the load generator. */
  readonly serverUs: number;
  readonly redisUs: number;
  readonly loadgenUs: number;
  /** CPU other processes on the machine used meanwhile, % of one core. */
  readonly othersPct: number;
}

/** One load run, with the CPU each party used for it; `after` runs before the CPU is read. */
async function measure(
  gen: LoadGenerator,
  load: LoadSpec,
  serverPid: number,
  redisPid: number | undefined,
  after: () => Promise<unknown> = async () => {},
): Promise<Measured> {
  const others = contention();
  const server0 = treeCpuSeconds(serverPid);
  const redis0 = redisPid === undefined ? NaN : treeCpuSeconds(redisPid);
  const gen0 = reapedChildrenCpuSeconds();
  const result = await gen.run(load);
  const loadgen = reapedChildrenCpuSeconds() - gen0;
  const othersPct = others();
  await after();
  const per = (seconds: number): number => (1e6 * seconds) / result.ok;
  return {
    result,
    serverUs: per(treeCpuSeconds(serverPid) - server0),
    redisUs: redisPid === undefined ? NaN : per(treeCpuSeconds(redisPid) - redis0),
    loadgenUs: per(loadgen),
    othersPct,
  };
}

/** The run with the most Submits per second: contention only ever lowers a ceiling. */
const best = <T extends { readonly result: LoadResult }>(runs: readonly T[]): T =>
  runs.reduce((a, b) => (b.result.rps > a.result.rps ? b : a));

function runsNote(label: string, runs: readonly Measured[]): string {
  const m = best(runs);
  const redis = Number.isFinite(m.redisUs) ? `, Redis ${fmt(m.redisUs)} µs` : "";
  const each = runs.map((r) => `${fmt(r.result.rps)}/s (others ${r.othersPct.toFixed(0)}%)`).join(", ");
  const errors = runs
    .map((r) => describeErrors(r.result))
    .filter((e) => e !== "")
    .join("");
  return (
    `${label}: runs ${each}; best run's CPU per Submit: server ${fmt(m.serverUs)} µs${redis}, ` +
    `load generator ${fmt(m.loadgenUs)} µs${errors}`
  );
}

type Config = "bare" | "tollgate" | "noop";
type Mix = "fast" | "queued";

async function throughput(gen: LoadGenerator): Promise<{ bareIdleCpu: number }> {
  const rounds = Number(flags.rounds);
  log(
    `throughput: bare grpc-js cluster, tollgate serve (default policy and concurrency) and tollgate serve with a ` +
      `no-op handler, ${WORKERS} workers each, all up at once; ${rounds} interleaved rounds`,
  );
  const started: { stop(): Promise<void> }[] = [];
  const clients: Redis[] = [];
  const runs = new Map<string, Measured[]>();
  const dispositions = new Map<string, Map<string, number>>();
  let bareIdleCpu = NaN;
  try {
    const bare = await startBareServer();
    started.push(bare);
    const servers = new Map<
      Config,
      { target: string; pid: number; redisPid?: number; plain?: Redis; metricsPort?: number }
    >();
    servers.set("bare", { target: `127.0.0.1:${bare.port}`, pid: bare.pid });
    for (const config of ["tollgate", "noop"] as const) {
      const redis = await startRedis();
      started.push(redis);
      const metricsPort = await freePort();
      const env: Record<string, string> = { TOLLGATE_METRICS_PORT: String(metricsPort) };
      if (config === "noop") env.TOLLGATE_HANDLER = fileURLToPath(new URL("./noop-handler.mjs", import.meta.url));
      const tollgate = await startTollgate(redis, env);
      started.push(tollgate);
      const plain = redis.client();
      clients.push(plain);
      servers.set(config, {
        target: `127.0.0.1:${tollgate.port}`,
        pid: tollgate.pid,
        redisPid: redisServerPid(redis.port),
        plain,
        metricsPort,
      });
    }
    for (const server of servers.values())
      await gen.run(spec(server.target, { prefix: "warm-", durationSeconds: WARMUP }));
    for (const server of servers.values()) if (server.plain) await settle(server.plain);

    const plan: [Config, Mix][] = [
      ["bare", "fast"],
      ["tollgate", "fast"],
      ["noop", "fast"],
      ["bare", "queued"],
      ["tollgate", "queued"],
    ];
    for (let round = 1; round <= rounds; round++) {
      for (const [config, mix] of plan) {
        const server = servers.get(config)!;
        const load =
          mix === "fast"
            ? spec(server.target, { prefix: `fast${round}-`, durationSeconds: SECONDS })
            : spec(server.target, { prefix: "queue-", users: QUEUE_USERS, durationSeconds: SECONDS });
        const before = server.metricsPort ? await submittedByDisposition(server.metricsPort) : undefined;
        const m = await measure(gen, load, server.pid, server.redisPid, async () => {
          // A started task's work (its handler and finish) belongs to its Submit.
          if (mix === "fast" && server.plain && !(await settle(server.plain))) {
            notes.push(`throughput: ${config} tasks had not all finished 20 s after a run`);
          }
        });
        const key = `${config}:${mix}`;
        runs.set(key, [...(runs.get(key) ?? []), m]);
        if (before && server.metricsPort) {
          const after = await submittedByDisposition(server.metricsPort);
          const tally = dispositions.get(key) ?? new Map<string, number>();
          for (const [k, v] of after) tally.set(k, (tally.get(k) ?? 0) + v - (before.get(k) ?? 0));
          dispositions.set(key, tally);
        }
      }
    }
    for (const [config, server] of servers) {
      if (!server.plain) continue;
      const rewrites = Number(/^aof_rewrites:(\d+)/m.exec(await server.plain.info("persistence"))?.[1] ?? 0);
      if (rewrites > 0)
        notes.push(
          `throughput: ${config}'s Redis (appendonly yes) rewrote its AOF ${rewrites} time(s) during the runs`,
        );
    }
    // Idle baseline for the idle section: the bare cluster doing nothing.
    await sleep(1_000);
    const cpu0 = treeCpuSeconds(bare.pid);
    const t0 = performance.now();
    await sleep(Number(flags["idle-seconds"]) * 1000);
    bareIdleCpu = (100 * (treeCpuSeconds(bare.pid) - cpu0)) / ((performance.now() - t0) / 1000);
  } finally {
    for (const client of clients) client.disconnect();
    for (const each of started.reverse()) await each.stop();
  }

  const split = (key: string): string => {
    const tally = dispositions.get(key) ?? new Map<string, number>();
    const total = (tally.get("started") ?? 0) + (tally.get("queued") ?? 0);
    return `${fmt((100 * (tally.get("started") ?? 0)) / total, 1)}% started, ${fmt((100 * (tally.get("queued") ?? 0)) / total, 1)}% queued`;
  };
  const get = (key: string): Measured[] => runs.get(key) ?? [];
  notes.push(runsNote("bare server, start-now mix", get("bare:fast")));
  notes.push(runsNote("bare server, queueing mix", get("bare:queued")));
  notes.push(
    runsNote(`tollgate, start-now mix (every Submit a new user; ${split("tollgate:fast")})`, get("tollgate:fast")),
  );
  notes.push(
    runsNote(`tollgate, queueing mix (${QUEUE_USERS} users; ${split("tollgate:queued")})`, get("tollgate:queued")),
  );
  notes.push(runsNote(`tollgate, start-now mix, no-op handler (${split("noop:fast")})`, get("noop:fast")));

  const atLeast = (min: number) => ({
    text: `>= ${min.toFixed(2)}x bare`,
    met: (_: number, ratio: number) => ratio >= min,
  });
  for (const [name, mix] of [
    [`start-now mix`, "fast"],
    [`queueing mix, ${QUEUE_USERS} users`, "queued"],
  ] as const) {
    const t = best(get(`tollgate:${mix}`));
    const b = best(get(`bare:${mix}`));
    row(`Submit throughput, ${name} (req/s)`, t.result.rps, {}, b.result.rps, atLeast(0.7));
    row(`Submit latency p50, ${name}`, t.result.p50Ms, { digits: 1, suffix: " ms" }, b.result.p50Ms, { text: "—" });
    row(`Submit latency p99, ${name}`, t.result.p99Ms, { digits: 1, suffix: " ms" }, b.result.p99Ms, { text: "—" });
    row(`Server CPU per Submit, ${name} (workers + primary)`, t.serverUs, { suffix: " µs" }, b.serverUs, { text: "—" });
  }
  const bareFast = best(get("bare:fast"));
  row(
    `Submit throughput, start-now mix, no-op handler (diagnostic)`,
    best(get("noop:fast")).result.rps,
    {},
    bareFast.result.rps,
    {
      text: "—",
    },
  );
  // The arithmetic of the throughput target on a machine whose cores the
  // load generator, Redis and the server share.
  const f = best(get("tollgate:fast"));
  const targetRps = 0.7 * bareFast.result.rps;
  const budgetUs = (1e6 * WORKERS) / targetRps;
  notes.push(
    `throughput target, start-now mix: 0.7x bare is ${fmt(targetRps)} Submits/s; sharing ${WORKERS} cores, that affords ` +
      `${fmt(budgetUs)} µs of CPU per Submit in all, of which the load generator (${fmt(f.loadgenUs)} µs) and Redis ` +
      `(${fmt(f.redisUs)} µs) leave ${fmt(budgetUs - f.loadgenUs - f.redisUs)} µs for Tollgate's processes: they use ` +
      `${fmt(f.serverUs)} µs, the bare server ${fmt(bareFast.serverUs)} µs. With the load generator and Redis on other ` +
      `cores, 0.7x bare means at most ${fmt(bareFast.serverUs / 0.7)} µs of server CPU per Submit.`,
  );
  forGoals.tollgate = { fast: best(get("tollgate:fast")), queued: best(get("tollgate:queued")) };
  forGoals.bare = { fast: bareFast, queued: best(get("bare:queued")) };
  forGoals.noop = best(get("noop:fast"));
  return { bareIdleCpu };
}

// ------------------------------------------------------------------- bullmq

/** BullMQ's round with the most jobs per second, as for Tollgate's rounds. */
const bestBullmq = (figures: BullmqFigures): BullmqRound =>
  figures.rounds.reduce((a, b) => (b.jobsPerSecond > a.jobsPerSecond ? b : a));

async function bullmq(): Promise<void> {
  const figures = await benchBullmq({
    rounds: Number(flags.rounds),
    seconds: SECONDS,
    warmupSeconds: WARMUP,
    workers: WORKERS,
    inFlight: CONCURRENCY,
    concurrency: Number(flags["bullmq-concurrency"]),
    log,
  });
  forGoals.bullmq = figures;
  const b = bestBullmq(figures);
  notes.push(
    `bullmq: BullMQ ${figures.version}, ${figures.workers} worker processes (concurrency ${figures.concurrency} each), one ` +
      `producer process with ${CONCURRENCY} queue.add calls in flight, no-op processor, jobs kept when completed (the ` +
      `default), private Redis with the append-only file as Tollgate's; rounds: ` +
      figures.rounds
        .map(
          (r) =>
            `${fmt(r.jobsPerSecond)} jobs/s (${fmt(r.jobs)} jobs; CPU per job Redis ${fmt(r.redisUs)} + workers ` +
            `${fmt(r.workersUs)} + producer ${fmt(r.producerUs)} = ${fmt(r.totalUs)} µs)`,
        )
        .join(", "),
  );
  row("BullMQ: jobs per second, added and processed (no-op)", b.jobsPerSecond, {}, undefined, { text: "—" });
  row("BullMQ: CPU per job, Redis", b.redisUs, { suffix: " µs" }, undefined, { text: "—" });
  row(`BullMQ: CPU per job, ${figures.workers} workers`, b.workersUs, { suffix: " µs" }, undefined, { text: "—" });
  row("BullMQ: CPU per job, producer", b.producerUs, { suffix: " µs" }, undefined, { text: "—" });
  row("BullMQ: CPU per job, in all", b.totalUs, { suffix: " µs" }, undefined, { text: "—" });
}

/** Tollgate's tasks beside BullMQ's jobs: rate and CPU per task by party. */
function printPeers(): void {
  const t = forGoals.tollgate?.fast;
  const noop = forGoals.noop;
  const bare = forGoals.bare?.fast;
  const b = forGoals.bullmq && bestBullmq(forGoals.bullmq);
  if (!b && !t) return;
  const us = (value: number): string => `${fmt(value)} µs`;
  const body: Record<"who" | "rate" | "redis" | "server" | "client" | "total", string>[] = [];
  for (const [who, m] of [
    ["Tollgate, start-now mix (built-in handler)", t],
    ["Tollgate, start-now mix, no-op handler", noop],
  ] as const) {
    if (!m) continue;
    body.push({
      who,
      rate: `${fmt(m.result.rps)}/s`,
      redis: us(m.redisUs),
      server: us(m.serverUs),
      client: us(m.loadgenUs),
      total: us(m.redisUs + m.serverUs + m.loadgenUs),
    });
  }
  if (b) {
    body.push({
      who: "BullMQ 5, no-op jobs",
      rate: `${fmt(b.jobsPerSecond)}/s`,
      redis: us(b.redisUs),
      server: us(b.workersUs),
      client: us(b.producerUs),
      total: us(b.totalUs),
    });
    if (bare)
      body.push({
        who: "BullMQ behind a bare grpc-js front (+ its CPU per call)",
        rate: "—",
        redis: us(b.redisUs),
        server: us(b.workersUs + bare.serverUs),
        client: us(b.producerUs),
        total: us(b.totalUs + bare.serverUs),
      });
  }
  console.log("\nTollgate beside BullMQ, CPU per task (per job), best round of each, same run");
  printColumns(
    {
      who: "",
      rate: "tasks/s",
      redis: "Redis",
      server: "server or workers",
      client: "load generator or producer",
      total: "in all",
    },
    body,
  );
}

// ------------------------------------------------------------- redis per Submit

/** Script SHA1 -> name, with includes expanded as the store sends them. */
async function scriptNames(): Promise<Map<string, string>> {
  const dir = new URL("../src/redis/lua/", import.meta.url);
  const names = new Map<string, string>();
  for (const file of await readdir(dir)) {
    if (!file.endsWith(".lua")) continue;
    const script = new LuaScript(file);
    names.set(script.sha, script.name);
  }
  return names;
}

interface Tally {
  roundTrips: number;
  commands: number;
  /** Per client command (script name for EVALSHA): [calls, commands including those inside]. */
  readonly by: Map<string, [number, number]>;
}

async function redisPerSubmit(gen: LoadGenerator): Promise<void> {
  log("Redis round trips and commands per Submit (MONITOR)");
  const names = await scriptNames();
  const redis = await startRedis();
  // The default policy's two windows, lengthened so nothing the queued path
  // stores can start (and be claimed) while it is measured.
  const policy = "1/1m,20/1h";
  const tollgate = await startTollgate(redis, { TOLLGATE_RATE_LIMITS: policy });
  const plain = redis.client();
  const monitorClient = redis.client();
  const SUBMITS = 2_000;
  const USERS = 100;
  try {
    const target = `127.0.0.1:${tollgate.port}`;
    const ownAddr = /addr=(\S+)/.exec(String(await plain.call("CLIENT", "INFO")))?.[1] ?? "";
    // Warm up (scripts loaded, JIT) and give the queued path's users their one start.
    await gen.run(spec(target, { prefix: "rt-warm-", total: 500, maxSeconds: 60 }));
    await gen.run(spec(target, { prefix: "rt-q-", total: USERS, maxSeconds: 60 }));
    await settle(plain);

    const tallies = new Map<string, Tally>();
    let current: Tally | undefined;
    let lastClient: [number, number] | undefined;
    const monitor = await monitorClient.monitor();
    let markersSeen = 0;
    monitor.on("monitor", (_time: string, args: string[], source: string) => {
      const name = (args[0] ?? "").toLowerCase();
      if (source === ownAddr) {
        if (name === "echo" && String(args[1]).startsWith("bench:")) {
          const [, phase, edge] = String(args[1]).split(":");
          current = edge === "start" ? { roundTrips: 0, commands: 0, by: new Map() } : undefined;
          if (current) tallies.set(phase!, current);
          markersSeen++;
        }
        return;
      }
      if (!current) return;
      current.commands++;
      if (source === "lua") {
        if (lastClient) lastClient[1]++;
        return;
      }
      current.roundTrips++;
      const key =
        name === "evalsha" || name === "eval" ? (names.get(String(args[1])) ?? `${name} (unknown script)`) : name;
      lastClient = current.by.get(key) ?? [0, 0];
      lastClient[0]++;
      lastClient[1]++;
      current.by.set(key, lastClient);
    });
    await sleep(200);

    await plain.echo("bench:fast:start");
    const fast = await gen.run(spec(target, { prefix: "rt-fast-", total: SUBMITS, maxSeconds: 60 }));
    if (!(await settle(plain))) notes.push("redis: fast-path tasks had not all finished when counting stopped");
    await sleep(300);
    await plain.echo("bench:fast:end");

    await plain.echo("bench:queued:start");
    const queued = await gen.run(spec(target, { prefix: "rt-q-", users: USERS, total: SUBMITS, maxSeconds: 60 }));
    await sleep(500);
    await plain.echo("bench:queued:end");
    await waitFor(async () => markersSeen >= 4, 10_000);
    monitor.disconnect();

    const report = (label: string, result: LoadResult, tally: Tally | undefined, what: string): void => {
      if (!tally) throw new Error(`MONITOR saw no ${label} markers`);
      const n = result.ok;
      const per = [...tally.by]
        .sort((a, b) => b[1][1] - a[1][1])
        .map(([key, [calls, commands]]) => `${key} ${(calls / n).toFixed(2)} (${(commands / n).toFixed(1)} cmds)`)
        .join(", ");
      notes.push(
        `redis, ${label} (${fmt(n)} Submits, policy ${policy}, ${what}): per Submit ${per}${describeErrors(result)}`,
      );
      return;
    };
    const fastTally = tallies.get("fast");
    const queuedTally = tallies.get("queued");
    report("fast path", fast, fastTally, "each a new user, counted until its task finished");
    report("queued path", queued, queuedTally, `${USERS} users whose window is used`);
    row(
      "Redis round trips per Submit, fast path (incl. its finish)",
      fastTally!.roundTrips / fast.ok,
      { digits: 2 },
      undefined,
      {
        text: "<= 2",
        met: (m) => m <= 2.005,
      },
    );
    row("Redis commands per Submit, fast path", fastTally!.commands / fast.ok, { digits: 1 }, undefined, { text: "—" });
    row("Redis round trips per Submit, queued path", queuedTally!.roundTrips / queued.ok, { digits: 2 }, undefined, {
      text: "—",
    });
    row("Redis commands per Submit, queued path", queuedTally!.commands / queued.ok, { digits: 1 }, undefined, {
      text: "—",
    });
  } finally {
    monitorClient.disconnect();
    plain.disconnect();
    await tollgate.stop();
    await redis.stop();
  }
}

// ------------------------------------------------------------------- memory

async function memory(gen: LoadGenerator): Promise<void> {
  const tasks = Number(flags["memory-tasks"]);
  const users = 1_000;
  log(`Redis memory per queued task (${fmt(tasks)} tasks, ${users} users)`);
  const redis = await startRedis();
  const plain = redis.client();
  const payload = new Uint8Array(PAYLOAD_BYTES).map((_, i) => 65 + (i % 26));
  let tollgate: Awaited<ReturnType<typeof startTollgate>> | undefined;
  try {
    // Baseline: the same ids and payloads as bare entries of per-user lists,
    // the least any Redis queue stores.
    const base0 = await usedMemory(plain);
    for (let first = 0; first < tasks; first += 10_000) {
      const pipeline = plain.pipeline();
      for (let i = first; i < Math.min(tasks, first + 10_000); i++) {
        pipeline.rpush(`base:${i % users}`, Buffer.concat([Buffer.from(`${String(i).padStart(22, "0")}`), payload]));
      }
      await pipeline.exec();
    }
    await sleep(300);
    const baseline = ((await usedMemory(plain)) - base0) / tasks - PAYLOAD_BYTES;
    await plain.flushall("SYNC");

    tollgate = await startTollgate(redis, { TOLLGATE_RATE_LIMITS: "1/1h" });
    const target = `127.0.0.1:${tollgate.port}`;
    // Each user's first task starts (and uses the hour's one start); the
    // tasks measured below then all queue.
    await gen.run(spec(target, { prefix: "mem-", total: users, maxSeconds: 60 }));
    await settle(plain);
    await sleep(500);
    const queued0 = await sumOver(keys, async (p) => Number((await plain.hget(p.totals, "q")) ?? 0));
    const before = await usedMemory(plain);
    const result = await gen.run(
      spec(target, { prefix: "mem-", users, total: tasks, payload, concurrency: 100, maxSeconds: 300 }),
    );
    await sleep(500);
    const after = await usedMemory(plain);
    const queued = (await sumOver(keys, async (p) => Number((await plain.hget(p.totals, "q")) ?? 0))) - queued0;
    if (queued !== result.ok)
      notes.push(`memory: ${fmt(result.ok)} Submits answered OK but ${fmt(queued)} tasks queued`);
    const perTask = (after - before - queued * PAYLOAD_BYTES) / queued;
    forGoals.memory = { perTask, baseline };
    notes.push(
      `memory: used_memory +${fmt((after - before) / 1e6, 1)} MB for ${fmt(queued)} queued tasks ` +
        `(${users} users, ${PAYLOAD_BYTES}-byte payloads)${describeErrors(result)}; baseline = the same ids and payloads RPUSHed to ${users} plain lists; ` +
        `tollgate serve ran ${tollgate.code}`,
    );
    row("Redis memory per queued task, beyond payload", perTask, { suffix: " B" }, baseline, {
      text: "<= 250 B",
      met: (m) => m <= 250,
    });
  } finally {
    plain.disconnect();
    await tollgate?.stop();
    await redis.stop();
  }
}

// -------------------------------------------------------------------- drain

async function drain(): Promise<void> {
  const users = Number(flags["drain-users"]);
  const policy = "1/1s,2/3s";
  log(`drain: ${fmt(users)} users x 3 tasks under ${policy} (bench/drain.ts)`);
  const figures = await benchDrain(users, 3, policy, 256);
  forGoals.drain = figures;
  const after = figures.afterSubmits;
  notes.push(
    `drain: ${fmt(figures.tasks)} tasks, ${fmt(figures.queued)} queued, submitted in ${figures.submitSeconds.toFixed(1)} s ` +
      `(200 in flight), drained in ${figures.seconds.toFixed(1)} s; ${figures.commandsPerStart.toFixed(1)} Redis commands ` +
      `per task; the ${fmt(after.tasks)} queued tasks allowed to start only after the last Submit was answered (the drain ` +
      `without Submits competing for the cores): lateness p50 ${after.p50} ms, p99 ${after.p99} ms, max ${after.max} ms`,
  );
  row(`Drain start lateness p50 (${fmt(users)} users, ${policy})`, figures.latenessP50, { suffix: " ms" }, undefined, {
    text: "—",
  });
  row(`Drain start lateness p99`, figures.latenessP99, { suffix: " ms" }, undefined, {
    text: "<= 50 ms",
    met: (m) => m <= 50,
  });
  row(`Drain start lateness max`, figures.latenessMax, { suffix: " ms" }, undefined, { text: "—" });
  row(`Drain window violations`, figures.violations, {}, undefined, { text: "0", met: (m) => m === 0 });
}

// --------------------------------------------------------------------- idle

async function idle(gen: LoadGenerator, bareIdleCpu: number | undefined): Promise<void> {
  const users = Number(flags["idle-users"]);
  const seconds = Number(flags["idle-seconds"]);
  log(`idle: ${fmt(users)} users waiting on 1/1m, measured over ${seconds} s`);
  const redis = await startRedis();
  const tollgate = await startTollgate(redis, { TOLLGATE_RATE_LIMITS: "1/1m" });
  const plain = redis.client();
  try {
    const target = `127.0.0.1:${tollgate.port}`;
    // Request n and n + users are the same user: the first starts, the second waits a minute.
    const result = await gen.run(spec(target, { prefix: "idle-", users, total: 2 * users, maxSeconds: 60 }));
    const settled = await waitFor(
      async () =>
        (await sumOver(keys, (p) => plain.zcard(p.leases))) === 0 &&
        (await sumOver(keys, (p) => plain.zcard(p.dueUsers))) === users,
      20_000,
    );
    if (!settled) notes.push(`idle: did not settle to ${users} waiting users and nothing running`);
    await sleep(2_000);
    const cpu0 = treeCpuSeconds(tollgate.pid);
    const byPid0 = cpuSecondsByPid(tollgate.pid);
    const stats0 = await commandStats(plain);
    const t0 = performance.now();
    await sleep(seconds * 1000);
    const cpu1 = treeCpuSeconds(tollgate.pid);
    const byPid1 = cpuSecondsByPid(tollgate.pid);
    const stats1 = await commandStats(plain);
    const elapsed = (performance.now() - t0) / 1000;
    const [nowSeconds] = await plain.time();
    const heads = await Promise.all(keys.all.map((p) => plain.zrange(p.dueUsers, 0, 0, "WITHSCORES")));
    const firstDue = Math.min(...heads.map((head) => Number(head[1] ?? Infinity)));
    if (firstDue <= Number(nowSeconds) * 1000) notes.push("idle: a waiting task became due during the measurement");
    const commands = commandsBetween(stats0, stats1);
    const cpuPct = (100 * (cpu1 - cpu0)) / elapsed;
    forGoals.idle = { users, cpuPct, bareCpuPct: bareIdleCpu };
    const perProcess = [...byPid1]
      .map(
        ([pid, cpu]) =>
          `${pid === tollgate.pid ? "primary" : "worker"} ${((100 * (cpu - (byPid0.get(pid) ?? cpu))) / elapsed).toFixed(2)}%`,
      )
      .join(", ");
    notes.push(
      `idle: ${fmt(result.ok)} Submits${describeErrors(result)}, then ${elapsed.toFixed(1)} s with ${fmt(users)} users waiting; ` +
        `Redis commands: ${[...commands].map(([k, v]) => `${k} ${v}`).join(", ") || "none"}; ` +
        `first task due ${((firstDue - Number(nowSeconds) * 1000) / 1000).toFixed(0)} s after the window; ` +
        `CPU by process: ${perProcess} (of one core; /proc ticks are 10 ms, so ±0.1% each); CPU baseline = the bare cluster idle; ` +
        `tollgate serve ran ${tollgate.code}`,
    );
    row(
      `Idle CPU, serve process tree (${WORKERS} workers + primary)`,
      cpuPct,
      { digits: 2, suffix: "% core" },
      bareIdleCpu,
      {
        text: "< 1% core",
        met: (m) => m < 1,
      },
    );
    row(`Idle Redis commands per second`, sum(commands.values()) / elapsed, { digits: 2 }, undefined, {
      text: "< 10/s",
      met: (m) => m < 10,
    });
  } finally {
    plain.disconnect();
    await tollgate.stop();
    await redis.stop();
  }
}

// ------------------------------------------------------------------ cluster

const DRAIN_POLICY = "1/1s,2/3s";

function drainRows(label: string, figures: DrainFigures, baseline: DrainFigures | undefined): void {
  row(`${label} start lateness p50`, figures.latenessP50, { suffix: " ms" }, baseline?.latenessP50, { text: "—" });
  row(`${label} start lateness p99`, figures.latenessP99, { suffix: " ms" }, baseline?.latenessP99, {
    text: "<= 50 ms",
    met: (m) => m <= 50,
  });
  row(`${label} start lateness max`, figures.latenessMax, { suffix: " ms" }, baseline?.latenessMax, { text: "—" });
  row(`${label} window violations`, figures.violations, {}, baseline?.violations, {
    text: "0",
    met: (m) => m === 0,
  });
}

async function cluster(gen: LoadGenerator): Promise<void> {
  const drainUsers = Number(flags["cluster-drain-users"]);
  const figures = await benchCluster(gen, {
    rounds: Number(flags.rounds),
    seconds: SECONDS,
    warmupSeconds: WARMUP,
    spec,
    drainUsers,
    drainPolicy: DRAIN_POLICY,
    log,
  });
  const s = best(figures.standalone);
  const c = best(figures.cluster);
  const all = (sample: Sample): number => sum(sample.redisUs);
  const each = (samples: readonly Sample[]): string =>
    samples
      .map(
        (m) =>
          `${fmt(m.result.rps)}/s, ${fmt(100 * m.startedShare, 1)}% started (Redis ${m.redisUs.map((us) => fmt(us)).join(" + ")} µs, server ${fmt(m.serverUs)} µs, ` +
          `${m.commands.toFixed(1)} commands${describeErrors(m.result)})`,
      )
      .join("; ");
  notes.push(`cluster, standalone rounds: ${each(figures.standalone)}`);
  notes.push(`cluster, Cluster rounds: ${each(figures.cluster)}`);
  row("Cluster: Submit throughput, start-now mix (req/s)", c.result.rps, {}, s.result.rps, { text: "—" });
  row("Cluster: Submit latency p99", c.result.p99Ms, { digits: 1, suffix: " ms" }, s.result.p99Ms, { text: "—" });
  row("Cluster: server CPU per Submit", c.serverUs, { suffix: " µs" }, s.serverUs, { text: "—" });
  figures.masters.forEach((master, i) => {
    row(
      `Cluster: Redis CPU per Submit, master ${i + 1} (${master.partitions} partitions)`,
      c.redisUs[i]!,
      { suffix: " µs" },
      undefined,
      { text: "—" },
    );
  });
  row("Cluster: Redis CPU per Submit, all masters", all(c), { suffix: " µs" }, all(s), { text: "—" });
  row("Cluster: Redis commands per Submit, all masters", c.commands, { digits: 1 }, s.commands, { text: "—" });
  const spread = (values: readonly number[]): number => Math.max(...values) / Math.min(...values);
  const partitions = figures.masters.map((m) => m.partitions);
  const users = figures.masters.map((m) => m.users);
  row(
    `Cluster: partitions per master, most/fewest (${partitions.join("/")})`,
    spread(partitions),
    { digits: 2 },
    undefined,
    {
      text: "—",
    },
  );
  row("Cluster: users per master, most/fewest", spread(users), { digits: 2 }, undefined, { text: "—" });
  notes.push(
    `cluster: users per master ${users.map((n) => fmt(n)).join(" / ")} (from each user's partition and CLUSTER ` +
      `KEYSLOT of its tag); stats hashes found on each by SCAN ${figures.masters.map((m) => fmt(m.stored)).join(" / ")}`,
  );
  const label = `Cluster: drain (${fmt(drainUsers)} users x 3, ${DRAIN_POLICY})`;
  drainRows(label, figures.drainCluster, figures.drainStandalone);
  for (const [name, d] of [
    ["standalone", figures.drainStandalone],
    ["Cluster", figures.drainCluster],
  ] as const)
    notes.push(
      `cluster, drain on ${name}: ${fmt(d.tasks)} tasks, ${fmt(d.queued)} queued, drained in ${d.seconds.toFixed(1)} s; ` +
        `${d.commandsPerStart.toFixed(1)} Redis commands per task`,
    );
}

// ----------------------------------------------------------------- capacity

async function capacity(gen: LoadGenerator): Promise<void> {
  const figures = await benchCapacity(gen, { users: Number(flags["capacity-users"]), spec, log });
  for (const [name, cost] of [
    ["start-now Submit (with its run and finish)", figures.startNow],
    ["queued Submit", figures.queued],
    ["start of a queued task (claim, run, finish)", figures.claim],
  ] as const) {
    row(`Capacity: Redis CPU per ${name}`, cost.redisUs, { suffix: " µs" }, undefined, { text: "—" });
    notes.push(
      `capacity, ${name}: ${fmt(cost.count)} of them (Submits answered ${fmt(cost.started)} started, ` +
        `${fmt(cost.queuedNow)} queued); per each Redis ${fmt(cost.redisUs)} µs, ${cost.commands.toFixed(1)} commands, ` +
        `serve process tree ${fmt(cost.serverUs)} µs; commands run most (calls per each): ` +
        cost.top.map(([name, calls]) => `${name} ${calls.toFixed(2)}`).join(", "),
    );
  }
  row(
    "Capacity: Redis memory per queued task (one per user, no payload)",
    figures.queuedTaskBytes,
    { suffix: " B" },
    undefined,
    {
      text: "—",
    },
  );
  row("Capacity: an idle user's stats hash (MEMORY USAGE)", figures.statsBytes, { suffix: " B" }, undefined, {
    text: "—",
  });
  row(
    "Capacity: a finished task's record, kept a day (MEMORY USAGE)",
    figures.finishedTaskBytes,
    { suffix: " B" },
    undefined,
    {
      text: "—",
    },
  );
  row(
    "Capacity: a window counter, kept its duration (MEMORY USAGE)",
    figures.windowBytes,
    { suffix: " B" },
    undefined,
    {
      text: "—",
    },
  );
  notes.push(
    `capacity: policy ${figures.policy}; ${figures.errors.length === 0 ? "no errors" : figures.errors.join("; ")}`,
  );
}

// -------------------------------------------------------------------- churn

/** Every key in Redis, by SCAN. */
async function everyKey(client: Redis): Promise<string[]> {
  const found: string[] = [];
  let cursor = "0";
  do {
    const [next, batch] = await client.scan(cursor, "COUNT", 10_000);
    found.push(...batch);
    cursor = next;
  } while (cursor !== "0");
  return found;
}

async function churn(gen: LoadGenerator): Promise<void> {
  const users = Number(flags["churn-users"]);
  const retention = "2s";
  // A one-second window, so the window counters end with the retention too.
  const policy = "1/1s";
  log(`churn: ${fmt(users)} distinct users, one task each, retention ${retention}, policy ${policy}`);
  const redis = await startRedis();
  const tollgate = await startTollgate(redis, {
    TOLLGATE_RETENTION: retention,
    TOLLGATE_DEAD_LETTER_RETENTION: retention,
    TOLLGATE_RATE_LIMITS: policy,
  });
  const plain = redis.client();
  const permanent = new Set(permanentKeys(keys));
  const onlyPermanent = async (): Promise<boolean> => (await everyKey(plain)).every((key) => permanent.has(key));
  try {
    const target = `127.0.0.1:${tollgate.port}`;
    // Warm up (scripts loaded, connections and subscriptions open, every
    // partition's totals made), then let the warm-up users go.
    await gen.run(spec(target, { prefix: "churn-warm-", total: 2_000, maxSeconds: 60 }));
    await settle(plain);
    if (!(await waitFor(onlyPermanent, 60_000))) notes.push("churn: the warm-up users' keys did not all go");
    await sleep(2_000);
    const before = await usedMemory(plain);
    const keysBefore = await plain.dbsize();
    const t0 = performance.now();
    const result = await gen.run(spec(target, { prefix: "churn-", total: users, maxSeconds: 600 }));
    const submitSeconds = (performance.now() - t0) / 1000;
    if (!(await settle(plain, 120_000))) notes.push("churn: tasks had not all finished 120 s after the last Submit");
    const peak = await usedMemory(plain);
    const keysAtPeak = await plain.dbsize();
    const t1 = performance.now();
    const emptied = await waitFor(onlyPermanent, 300_000);
    const goneSeconds = (performance.now() - t1) / 1000;
    // Redis shrinks its emptied key tables in its cron (10 times a second); give it a moment.
    await sleep(3_000);
    const after = await usedMemory(plain);
    const keysAfter = await plain.dbsize();
    notes.push(
      `churn: ${fmt(result.ok)} users' Submits in ${submitSeconds.toFixed(1)} s${describeErrors(result)}; ` +
        `used_memory ${fmt(before / 1e6, 2)} MB before, ${fmt(peak / 1e6, 1)} MB when all had finished ` +
        `(${fmt(keysAtPeak)} keys), ${fmt(after / 1e6, 2)} MB after the retention (${fmt(keysAfter)} keys, ` +
        `${fmt(keysBefore)} before: the permanent ones${emptied ? "" : "; NOT every other key was gone"}), ` +
        `reached ${goneSeconds.toFixed(1)} s after the last task finished`,
    );
    row(
      `Redis memory after ${fmt(users)} users came and went, beyond baseline`,
      (after - before) / 1e6,
      { digits: 3, suffix: " MB" },
      undefined,
      { text: "<= 1 MB", met: (m) => emptied && m <= 1 },
    );
  } finally {
    plain.disconnect();
    await tollgate.stop();
    await redis.stop();
  }
}

// -------------------------------------------------------------------- start

async function start(): Promise<void> {
  log("start: 3 starts of a primary and 2 workers (bench/start.ts)");
  const figures = await benchStart(3, 3);
  notes.push(`start: ${figures.runs.map(describeStartRun).join("; ")}`);
  row("Worker start, fork to serving, median", figures.startMsMedian, { suffix: " ms" }, undefined, {
    text: "<= 300 ms",
    met: (m) => m <= 300,
  });
  row("Worker start, fork to serving, max", figures.startMsMax, { suffix: " ms" }, undefined, { text: "—" });
  row("Idle cluster memory, primary + 2 workers, PSS", figures.clusterPssMb, { suffix: " MB" }, undefined, {
    text: "< 150 MB",
    met: (m) => m < 150,
  });
  row("Idle cluster memory, primary + 2 workers, RSS summed", figures.clusterRssMb, { suffix: " MB" }, undefined, {
    text: "—",
  });
}

// ------------------------------------------------------------------ profile

async function profile(gen: LoadGenerator): Promise<void> {
  log("profiling tollgate serve's workers under the start-now mix (V8 CPU profiler)");
  const dir = await mkdtemp(join(tmpdir(), "tollgate-cpuprof-"));
  const redis = await startRedis();
  const preload = fileURLToPath(new URL("./cpu-profile.mjs", import.meta.url));
  const tollgate = await startTollgate(redis, {
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --import ${preload}`.trim(),
    BENCH_CPU_PROF_DIR: dir,
  });
  let result: LoadResult;
  try {
    const target = `127.0.0.1:${tollgate.port}`;
    await gen.run(spec(target, { prefix: "warm-", durationSeconds: WARMUP }));
    for (const pid of treePids(tollgate.pid)) if (pid !== tollgate.pid) process.kill(pid, "SIGURG"); // start profiling
    result = await gen.run(spec(target, { prefix: "prof-", durationSeconds: SECONDS }));
  } finally {
    await tollgate.stop(); // profiles are written as the processes exit
    await redis.stop();
  }
  const workers = (await readdir(dir)).filter((name) => name.endsWith(".cpuprofile")).map((name) => join(dir, name));
  console.log(
    `\nCPU profile of ${workers.length} workers under the start-now mix (${fmt(result.rps)} Submits/s while profiled, ${SECONDS} s after a ${WARMUP} s warm-up)`,
  );
  printProfileSummary(summariseProfiles(workers));
  if (process.env.BENCH_KEEP_PROFILES === "1")
    console.log(`  (profiles kept in ${dir}; npx tsx bench/profile.ts ${dir})`);
  else await rm(dir, { recursive: true, force: true });
  if (perfAvailable()) await perfProfile(gen);
  else notes.push("profile: perf (linux-perf) is not installed, so only V8's sampling profile was taken");
}

/** The same load under `perf record`: what the workers' threads spend CPU on (bench/perf-profile.ts). */
async function perfProfile(gen: LoadGenerator): Promise<void> {
  log("profiling tollgate serve's workers under the start-now mix (perf, on-CPU)");
  const dir = await mkdtemp(join(tmpdir(), "tollgate-perf-"));
  const data = join(dir, "perf.data");
  const redis = await startRedis();
  const tollgate = await startTollgate(redis, {
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} ${PERF_NODE_OPTIONS}`.trim(),
  });
  const workers = treePids(tollgate.pid).filter((pid) => pid !== tollgate.pid);
  let result: LoadResult;
  try {
    const target = `127.0.0.1:${tollgate.port}`;
    await gen.run(spec(target, { prefix: "warm-", durationSeconds: WARMUP }));
    const recording = recordPerf(workers, data);
    try {
      result = await gen.run(spec(target, { prefix: "perf-", durationSeconds: SECONDS }));
    } finally {
      await recording.stop();
    }
  } finally {
    await tollgate.stop();
    await redis.stop();
  }
  console.log(
    `\nOn-CPU profile (perf) of ${workers.length} workers under the start-now mix (${fmt(result.rps)} Submits/s while recorded, ${SECONDS} s after a ${WARMUP} s warm-up)`,
  );
  try {
    printPerfSummary(summarisePerf(data));
  } finally {
    if (process.env.BENCH_KEEP_PROFILES === "1") {
      console.log(
        `  (recording kept in ${data}; npx tsx bench/perf-profile.ts ${data}, while /tmp/perf-<pid>.map last)`,
      );
    } else {
      removePerfMaps(workers);
      await rm(dir, { recursive: true, force: true });
    }
  }
}

// -------------------------------------------------------------------- goals

/** Issue 16's goals, each judged on figures of this run. */
function printGoals(): void {
  type Goal = Record<"goal" | "measured" | "baseline" | "ratio" | "met", string>;
  const goals: Goal[] = [];
  const notRun = (goal: string, sections: string): void => {
    goals.push({ goal, measured: "not measured", baseline: "—", ratio: "—", met: `(run --only ${sections})` });
  };
  const judged = (
    goal: string,
    measured: number,
    baseline: number | undefined,
    unit: { digits?: number; suffix?: string },
    met: (measured: number, ratio: number) => boolean,
    qualifier = "",
  ): void => {
    const ratio = baseline === undefined || baseline === 0 ? NaN : measured / baseline;
    const text = (value: number): string => `${fmt(value, unit.digits ?? 0)}${unit.suffix ?? ""}`;
    goals.push({
      goal,
      measured: text(measured),
      baseline: baseline === undefined ? "—" : text(baseline),
      ratio: Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : "—",
      met: `${met(measured, ratio) ? "yes" : "NO"}${qualifier}`,
    });
  };
  const { tollgate, bare, bullmq, drain, memory, idle } = forGoals;
  for (const [mix, name] of [
    ["fast", "start-now mix"],
    ["queued", "queueing mix"],
  ] as const) {
    const goal = `Server CPU per Submit, ${name}, <= 1.5x the bare server's`;
    if (tollgate && bare)
      judged(goal, tollgate[mix].serverUs, bare[mix].serverUs, { suffix: " µs" }, (_, r) => r <= 1.5);
    else notRun(goal, "throughput");
  }
  for (const [mix, name] of [
    ["fast", "start-now mix"],
    ["queued", "queueing mix"],
  ] as const) {
    const goal = `Submit throughput, ${name}, >= 0.7x the bare cluster's (req/s)`;
    if (tollgate && bare) judged(goal, tollgate[mix].result.rps, bare[mix].result.rps, {}, (_, r) => r >= 0.7);
    else notRun(goal, "throughput");
  }
  {
    const goal = "CPU per started task, server + Redis, < BullMQ's per job + the bare server's per call";
    if (tollgate && bare && bullmq)
      judged(
        goal,
        tollgate.fast.serverUs + tollgate.fast.redisUs,
        bestBullmq(bullmq).totalUs + bare.fast.serverUs,
        { suffix: " µs" },
        (_, r) => r < 1,
      );
    else notRun(goal, "throughput,bullmq");
  }
  {
    const scale = 50_000;
    const short = drain && drain.users < scale ? ` (at ${fmt(drain.users)} users; --drain-users ${scale})` : "";
    const p99 = `Drain start lateness p99 <= 50 ms, ${fmt(drain?.users ?? scale)} users x 3 (goal: ${fmt(scale)})`;
    const violations = `Drain window violations = 0, ${fmt(drain?.users ?? scale)} users`;
    if (drain) {
      judged(p99, drain.latenessP99, undefined, { suffix: " ms" }, (m) => m <= 50, short);
      judged(violations, drain.violations, undefined, {}, (m) => m === 0, short);
      // Not a goal: the same p99 over the tasks allowed only once every Submit was answered.
      goals.push({
        goal: `  (diagnostic) the same p99, tasks allowed after the last Submit (${fmt(drain.afterSubmits.tasks)})`,
        measured: `${fmt(drain.afterSubmits.p99)} ms`,
        baseline: "—",
        ratio: "—",
        met: "—",
      });
    } else {
      notRun(p99, "drain");
      notRun(violations, "drain");
    }
  }
  {
    const goal = "Redis memory per queued task, beyond its payload, <= 250 B (baseline: a plain list)";
    if (memory) judged(goal, memory.perTask, memory.baseline, { suffix: " B" }, (m) => m <= 250);
    else notRun(goal, "memory");
  }
  {
    const goal = `Idle CPU, primary + workers, ${fmt(idle?.users ?? 10_000)} users waiting, < 1% of a core (baseline: bare cluster idle)`;
    if (idle) judged(goal, idle.cpuPct, idle.bareCpuPct, { digits: 2, suffix: "%" }, (m) => m < 1);
    else notRun(goal, "idle");
  }
  console.log("\nGoals of issue 16 (Performance and footprint), from this run");
  printColumns({ goal: "goal", measured: "measured", baseline: "baseline", ratio: "ratio", met: "met?" }, goals);
}

// --------------------------------------------------------------------- main

const startedAt = performance.now();
// The serve processes run dist/ as npm start does: build it if src/ changed.
if (
  spawnSync(process.execPath, [fileURLToPath(new URL("../scripts/build.js", import.meta.url)), "--if-stale"], {
    stdio: "inherit",
  }).status !== 0
)
  throw new Error("npm run build failed");
const gen = pickLoadGenerator(flags.loadgen!);
log(
  `load generator: ${gen.name}; ${CONCURRENCY} calls in flight over ${CONNECTIONS} connections, ${SECONDS} s per run`,
);
const loadBefore = loadavg()[0]!;
const othersBySection: string[] = [];
/** Runs one section, noting how busy the rest of the machine was meanwhile. */
async function section(name: Section, body: () => Promise<void>): Promise<void> {
  if (!enabled(name)) return;
  const others = contention();
  await body();
  othersBySection.push(`${name} ${others().toFixed(0)}%`);
}
let bareIdleCpu: number | undefined;
await section("throughput", async () => {
  bareIdleCpu = (await throughput(gen)).bareIdleCpu;
});
await section("bullmq", () => bullmq());
await section("redis", () => redisPerSubmit(gen));
await section("memory", () => memory(gen));
await section("drain", () => drain());
await section("idle", () => idle(gen, bareIdleCpu));
await section("start", () => start());
await section("cluster", () => cluster(gen));
await section("capacity", () => capacity(gen));
await section("churn", () => churn(gen));
notes.push(
  `machine: load average ${loadBefore.toFixed(2)} when the bench started; CPU used by processes outside this bench, ` +
    `in % of one core, per section: ${othersBySection.join(", ")} (well above 0 means other work skewed the figures)`,
);

const redisVersion = await (async () => {
  const { execFileSync } = await import("node:child_process");
  try {
    return /v=(\S+)/.exec(execFileSync("redis-server", ["--version"], { encoding: "utf8" }))?.[1] ?? "?";
  } catch {
    return "?";
  }
})();
console.log(
  `\nTollgate benchmark — ${cpus().length} × ${cpus()[0]?.model.trim() ?? "cpu"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ` +
    `Node ${process.versions.node}, Redis ${redisVersion}; ${WORKERS} workers for both servers; load generator ${gen.name.split(" ")[0]}, ` +
    `${CONCURRENCY} in flight over ${CONNECTIONS} connections, ${SECONDS} s per throughput run after ${WARMUP} s warm-up\n`,
);
printTable();
console.log("");
for (const note of notes) console.log(`- ${note}`);
printPeers();
printGoals();
if (enabled("profile")) await profile(gen);
console.log(`\n(${((performance.now() - startedAt) / 1000).toFixed(0)} s in all)`);
process.exit(0);
