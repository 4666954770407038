// npm run bench:start [-- --runs 3 --idle-seconds 3]
//
// How `tollgate serve` starts and what it holds idle: `--runs` times, a
// cluster of a primary and 2 workers (TOLLGATE_WORKERS=2) on a private Redis
// (TOLLGATE_REDIS_URL, so no embedded redis-server is in the process tree or
// in the figures) is started as `npm start` starts it; each worker's time from
// its fork to serving is read from the primary's "worker serving" line
// (startMs), and after `--idle-seconds` with no calls each process's memory is
// read from /proc: RSS (resident pages, counting the node binary's pages that
// all three share in each of them) and PSS (each shared page split between
// the processes sharing it, so the cluster's PSS sums to what it holds). The
// "starting workers" line says what ran: the compiled dist/ or the sources
// through tsx.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { percentile } from "./drain.js";
import { sleep, startRedis, startTollgate, treePids } from "./processes.js";

interface Memory {
  readonly rssMb: number;
  readonly pssMb: number;
}

export interface StartRun {
  /** What the serve process ran, from its "starting workers" line. */
  readonly code: string;
  /** Each worker's fork-to-serving time, ms. */
  readonly startMs: readonly number[];
  readonly primary: Memory;
  readonly workers: readonly Memory[];
  /** Other processes in the tree (tsx's esbuild service, say): name and RSS. */
  readonly others: readonly string[];
}

export interface StartFigures {
  readonly runs: readonly StartRun[];
  /** Over every worker of every run. */
  readonly startMsMedian: number;
  readonly startMsMax: number;
  /** Medians of the runs' cluster totals (primary + workers). */
  readonly clusterRssMb: number;
  readonly clusterPssMb: number;
}

function memory(pid: number): Memory {
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(rollup)?.[1] ?? NaN);
  return { rssMb: kb("Rss") / 1024, pssMb: kb("Pss") / 1024 };
}

function name(pid: number): string {
  return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
}

const total = (run: StartRun, key: keyof Memory): number =>
  run.primary[key] + run.workers.reduce((sum, worker) => sum + worker[key], 0);

export async function benchStart(runs: number, idleSeconds: number): Promise<StartFigures> {
  const redis = await startRedis();
  const done: StartRun[] = [];
  try {
    for (let run = 0; run < runs; run++) {
      const tollgate = await startTollgate(redis, { TOLLGATE_WORKERS: "2" });
      try {
        await sleep(idleSeconds * 1000);
        const lines = tollgate.serve
          .output()
          .split("\n")
          .filter((line) => line.startsWith("{"))
          .map((line) => JSON.parse(line) as { msg: string; code?: string; startMs?: number });
        const children = treePids(tollgate.pid).filter((pid) => pid !== tollgate.pid);
        const workers = children.filter((pid) => name(pid) === "node");
        done.push({
          code: lines.find((line) => line.msg === "starting workers")?.code ?? "?",
          startMs: lines.filter((line) => line.msg === "worker serving").map((line) => line.startMs ?? NaN),
          primary: memory(tollgate.pid),
          workers: workers.map(memory),
          others: children
            .filter((pid) => !workers.includes(pid))
            .map((pid) => `${name(pid)} ${memory(pid).rssMb.toFixed(0)} MB`),
        });
      } finally {
        await tollgate.stop();
      }
    }
  } finally {
    await redis.stop();
  }
  const starts = done.flatMap((run) => run.startMs).sort((a, b) => a - b);
  const median = (key: keyof Memory): number =>
    percentile(
      done.map((run) => total(run, key)).sort((a, b) => a - b),
      50,
    );
  return {
    runs: done,
    startMsMedian: percentile(starts, 50),
    startMsMax: starts.at(-1) ?? NaN,
    clusterRssMb: median("rssMb"),
    clusterPssMb: median("pssMb"),
  };
}

export function describeStartRun(run: StartRun): string {
  const mb = (m: Memory): string => `${m.rssMb.toFixed(0)}/${m.pssMb.toFixed(0)}`;
  return (
    `${run.code}: fork to serving ${run.startMs.join(" / ")} ms; RSS/PSS MB: primary ${mb(run.primary)}, ` +
    `workers ${run.workers.map(mb).join(", ")}, total ${total(run, "rssMb").toFixed(0)}/${total(run, "pssMb").toFixed(0)}` +
    (run.others.length > 0 ? ` (not counted: ${run.others.join(", ")})` : "")
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: { runs: { type: "string", default: "3" }, "idle-seconds": { type: "string", default: "3" } },
  });
  const figures = await benchStart(Number(values.runs), Number(values["idle-seconds"]));
  for (const run of figures.runs) console.log(describeStartRun(run));
  console.log(
    `fork to serving: median ${figures.startMsMedian} ms, max ${figures.startMsMax} ms; idle cluster ` +
      `(primary + 2 workers), median: RSS ${figures.clusterRssMb.toFixed(0)} MB, PSS ${figures.clusterPssMb.toFixed(0)} MB`,
  );
  process.exit(0);
}
