// The processes `npm run bench` starts, and what it reads from them: the bare
// grpc-js cluster, `tollgate serve`, CPU time of a process tree (/proc), and
// Redis' INFO counters. Everything started here is stopped by its owner, and
// anything still alive when the bench exits is killed.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Cluster, Redis } from "ioredis";
import { createKeys, sumOver } from "../src/redis/keys.js";
import { nodeCommand } from "../test/support/redis-nodes.js";
import { TestRedis } from "../test/support/redis.js";
import { startServeProcess, type ServeProcess } from "../test/support/serve-process.js";

export const WORKERS = availableParallelism();

/**
 * Tasks running at once per worker: enough that a Submit never finds every
 * slot taken on a busy machine (its task would queue, and a claim's cost join
 * the Submit's), so the figures are the start-now path alone.
 */
export const SLOTS = 1_024;

const live = new Set<ChildProcess>();
const dataDirs = new Set<string>();
function killAll(): void {
  for (const child of live) {
    for (const pid of treePids(child.pid!)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
}
process.once("exit", killAll);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(130);
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `done` every 50 ms until it holds or `timeoutMs` passes; says which. */
export async function waitFor(done: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await done()) return true;
    if (Date.now() > until) return false;
    await sleep(50);
  }
}

/** SIGTERM, then SIGKILL for the whole tree if it has not exited in time. */
async function stopChild(child: ChildProcess, exited: Promise<unknown>, graceMs = 15_000): Promise<void> {
  const tree = treePids(child.pid!);
  child.kill("SIGTERM");
  const timer = setTimeout(() => {
    for (const pid of tree) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  }, graceMs);
  await exited;
  clearTimeout(timer);
  live.delete(child);
}

export interface BenchServer {
  readonly port: number;
  readonly pid: number;
  stop(): Promise<void>;
}

/** bench/bare-server.ts with `workers` workers, serving once all listen. */
export async function startBareServer(workers = WORKERS): Promise<BenchServer> {
  const script = fileURLToPath(new URL("./bare-server.ts", import.meta.url));
  const child = spawn(process.execPath, ["--import", "tsx", script, String(workers)], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  live.add(child);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let output = "";
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`bare server did not start:\n${output}`)), 20_000);
    child.stdout!.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      const match = /"msg":"serving","port":(\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    void exited.then(() => reject(new Error(`bare server exited before serving:\n${output}`)));
  });
  return { port, pid: child.pid!, stop: () => stopChild(child, exited) };
}

/** A child process of the bench, killed with the bench if it is still alive then. */
export interface BenchChild {
  readonly child: ChildProcess;
  /** Everything it printed so far, stdout and stderr. */
  output(): string;
  /** Resolves once it printed a line matching `pattern` (rejects if it exits first or after `timeoutMs`). */
  printed(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** SIGTERM, then SIGKILL for the whole tree after a grace period. */
  stop(): Promise<void>;
}

/** `node --import tsx <bench script> ...args`, its stdin a pipe. */
export function spawnBenchScript(script: string, args: readonly string[]): BenchChild {
  const child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(new URL(script, import.meta.url)), ...args], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  live.add(child);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let output = "";
  const waiting = new Set<() => void>();
  const take = (chunk: Buffer): void => {
    output += chunk.toString();
    for (const check of waiting) check();
  };
  child.stdout!.on("data", take);
  child.stderr!.on("data", take);
  return {
    child,
    output: () => output,
    printed: (pattern, timeoutMs = 20_000) =>
      new Promise((resolve, reject) => {
        const from = output.length;
        const timer = setTimeout(() => {
          waiting.delete(check);
          reject(new Error(`${script} did not print ${pattern} in ${timeoutMs} ms:\n${output}`));
        }, timeoutMs);
        const check = (): void => {
          const match = pattern.exec(output.slice(from));
          if (!match) return;
          waiting.delete(check);
          clearTimeout(timer);
          resolve(match);
        };
        waiting.add(check);
        void exited.then(() => {
          if (!waiting.has(check)) return;
          waiting.delete(check);
          clearTimeout(timer);
          reject(new Error(`${script} exited:\n${output}`));
        });
        check();
      }),
    stop: () => stopChild(child, exited),
  };
}

export interface TollgateServer extends BenchServer {
  readonly serve: ServeProcess;
  /** What it runs, from its "starting workers" line: "dist" (compiled) or "src" (through tsx). */
  readonly code: string;
}

/**
 * `tollgate serve` (default worker count) on `redis` (a standalone Redis or a
 * Cluster, by its URL), resolving once every
 * worker serves. TOLLGATE_LOG_LEVEL stays info: startServeProcess reads the
 * "serving" line (the log lines cost nothing per request).
 */
export async function startTollgate(
  redis: { readonly url: string },
  env: Record<string, string> = {},
): Promise<TollgateServer> {
  const dataDir = await mkdtemp(join(tmpdir(), "tollgate-bench-"));
  dataDirs.add(dataDir);
  const serve = await startServeProcess({
    TOLLGATE_HOST: "127.0.0.1",
    TOLLGATE_PORT: "0",
    TOLLGATE_REDIS_URL: redis.url,
    TOLLGATE_DATA_DIR: dataDir,
    ...env,
  });
  live.add(serve.child);
  const workers = Number(env.TOLLGATE_WORKERS ?? WORKERS);
  const all = await waitFor(
    async () => (serve.output().match(/"msg":"worker serving"/g) ?? []).length >= workers,
    20_000,
  );
  if (!all) throw new Error(`not every tollgate worker started:\n${serve.output()}`);
  return {
    port: serve.port,
    pid: serve.child.pid!,
    serve,
    code: /"code":"(\w+)"[^\n]*"msg":"starting workers"/.exec(serve.output())?.[1] ?? "?",
    stop: async () => {
      await stopChild(serve.child, serve.exited, 30_000);
      await rm(dataDir, { recursive: true, force: true });
      dataDirs.delete(dataDir);
    },
  };
}

/** A private redis-server (test/support/redis.ts); stop() it when done. */
export const startRedis = (): Promise<TestRedis> => TestRedis.start();

/** The pid and every descendant of it. */
export function treePids(root: number): number[] {
  const parents = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const list = parents.get(ppid) ?? [];
      list.push(Number(entry));
      parents.set(ppid, list);
    } catch {
      // exited meanwhile
    }
  }
  const out: number[] = [];
  const visit = (pid: number): void => {
    out.push(pid);
    for (const child of parents.get(pid) ?? []) visit(child);
  };
  visit(root);
  return out;
}

const TICKS_PER_SECOND = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/**
 * CPU seconds (user + system) used so far by a process and its descendants;
 * with `reaped`, also by descendants that have exited and been waited for.
 */
export function treeCpuSeconds(root: number, reaped = false): number {
  let ticks = 0;
  for (const pid of treePids(root)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      // Fields 14-17 of stat (utime, stime, cutime, cstime); the slice starts at field 3.
      ticks += Number(fields[11]) + Number(fields[12]);
      if (reaped) ticks += Number(fields[13]) + Number(fields[14]);
    } catch {
      // exited meanwhile
    }
  }
  return ticks / TICKS_PER_SECOND;
}

/** CPU seconds used so far by each process of a tree (its own threads only). */
export function cpuSecondsByPid(root: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of treePids(root)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out.set(pid, (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND);
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** CPU seconds used by this process's children that have exited (and been waited for). */
export function reapedChildrenCpuSeconds(): number {
  const stat = readFileSync("/proc/self/stat", "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[13]) + Number(fields[14])) / TICKS_PER_SECOND;
}

/** The pid of the redis-server this bench started on `port`. */
export function redisServerPid(port: number): number | undefined {
  return treePids(process.pid).find((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").startsWith(`redis-server 127.0.0.1:${port}`);
    } catch {
      return false;
    }
  });
}

/** CPU seconds the whole machine has been busy (all cores, /proc/stat). */
export function machineBusySeconds(): number {
  const [, ...fields] = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields.map(Number);
  return (user + nice + system + irq + softirq + steal) / TICKS_PER_SECOND;
}

/**
 * Measures what the rest of the machine does meanwhile: the CPU used by
 * processes that are not this bench or its children, as a share of one core.
 */
export function contention(): () => number {
  const t0 = performance.now();
  const busy0 = machineBusySeconds();
  const own0 = treeCpuSeconds(process.pid, true);
  return () => {
    const seconds = (performance.now() - t0) / 1000;
    const others = machineBusySeconds() - busy0 - (treeCpuSeconds(process.pid, true) - own0);
    return (100 * Math.max(0, others)) / seconds;
  };
}

/** Calls per command (INFO commandstats), lower-case names. */
export async function commandStats(client: Redis): Promise<Map<string, number>> {
  const info = await client.info("commandstats");
  const calls = new Map<string, number>();
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(match[1]!, Number(match[2]));
  return calls;
}

/** Commands run between two commandstats readings, without the bench's own INFO calls. */
export function commandsBetween(
  before: ReadonlyMap<string, number>,
  after: ReadonlyMap<string, number>,
): Map<string, number> {
  const delta = new Map<string, number>();
  for (const [name, calls] of after) {
    if (name === "info") continue;
    const d = calls - (before.get(name) ?? 0);
    if (d > 0) delta.set(name, d);
  }
  return delta;
}

export const sum = (values: Iterable<number>): number => {
  let total = 0;
  for (const value of values) total += value;
  return total;
};

/** What one Redis node has done so far: CPU seconds (user + system, INFO cpu) and calls per command (INFO commandstats). */
export interface RedisCounters {
  readonly cpuSeconds: number;
  /** Calls per command, lower-case names, commands run inside scripts included. */
  readonly calls: ReadonlyMap<string, number>;
}

/** RedisCounters of the node at 127.0.0.1:`port`, over a connection of its own. */
export async function redisCounters(port: number): Promise<RedisCounters> {
  const info = String(await nodeCommand(port, "INFO", "cpu", "commandstats"));
  const field = (name: string): number => Number(new RegExp(`^${name}:([\\d.]+)`, "m").exec(info)?.[1] ?? NaN);
  const calls = new Map<string, number>();
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(match[1]!, Number(match[2]));
  return { cpuSeconds: field("used_cpu_sys") + field("used_cpu_user"), calls };
}

/** Commands a node ran between two readings, without the bench's own INFO calls. */
export const commandsRun = (before: RedisCounters, after: RedisCounters): number =>
  sum(commandsBetween(before.calls, after.calls).values());

const keys = createKeys();

/** Waits until nothing runs and nothing is due (the drainers have caught up), on a standalone Redis or a Cluster. */
export async function settle(client: Redis | Cluster, timeoutMs = 20_000): Promise<boolean> {
  return waitFor(async () => {
    const [leases, due] = await Promise.all([
      sumOver(keys, (p) => client.zcard(p.leases)),
      sumOver(keys, (p) => client.zcount(p.dueUsers, "-inf", String(Date.now()))),
    ]);
    return leases === 0 && due === 0;
  }, timeoutMs);
}

export async function usedMemory(client: Redis): Promise<number> {
  const info = await client.info("memory");
  return Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? NaN);
}

/** Tollgate's counter `tollgate_tasks_submitted_total` by disposition, from /metrics. */
export async function submittedByDisposition(metricsPort: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const out = new Map<string, number>();
  for (const match of text.matchAll(/^tollgate_tasks_submitted_total\{disposition="([^"]+)"\} (\S+)/gm)) {
    out.set(match[1]!, Number(match[2]));
  }
  return out;
}
