// One interface over two load generators for TaskService.Submit: `ghz` (Go,
// preferred: it does not compete with the server for a Node event loop) and
// bench/load.ts (grpc-js, for machines without Go). Both take the same
// LoadSpec and return the same LoadResult, so the bare server and Tollgate
// are always measured with one and the same generator in a run.
import { execFile, execFileSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = fileURLToPath(new URL("..", import.meta.url));
const PROTO = "proto/tollgate/v1/task_service.proto";
const SUBMIT = "tollgate.v1.TaskService/Submit";

export interface LoadSpec {
  /** host:port */
  readonly target: string;
  /** user_id is `${prefix}${n}`, n the request number, or n modulo `users` when given. */
  readonly prefix: string;
  readonly users?: number;
  readonly payload?: Uint8Array;
  /** Run for this long, or until `total` requests when no duration is given. */
  readonly durationSeconds?: number;
  readonly total?: number;
  readonly concurrency: number;
  readonly connections: number;
  /** Give up after this long in any case. */
  readonly maxSeconds: number;
}

export interface LoadResult {
  readonly generator: string;
  /** Answered calls, OK or not. */
  readonly count: number;
  readonly ok: number;
  /** Non-OK answers by status or error text. */
  readonly errors: Readonly<Record<string, number>>;
  readonly seconds: number;
  /** OK answers per second. */
  readonly rps: number;
  /** Latency of OK answers, ms. */
  readonly p50Ms: number;
  readonly p99Ms: number;
}

export interface LoadGenerator {
  readonly name: string;
  run(spec: LoadSpec): Promise<LoadResult>;
}

/** ghz on PATH or where `go install` puts it, else undefined. */
export function findGhz(): string | undefined {
  const candidates: string[] = [];
  for (const dir of (process.env.PATH ?? "").split(":")) if (dir) candidates.push(join(dir, "ghz"));
  for (const go of ["go", "/usr/local/go/bin/go"]) {
    try {
      const [gobin = "", gopath = ""] = execFileSync(go, ["env", "GOBIN", "GOPATH"], { encoding: "utf8" }).split("\n");
      if (gobin.trim()) candidates.push(join(gobin.trim(), "ghz"));
      for (const dir of gopath.trim().split(":")) if (dir) candidates.push(join(dir, "bin", "ghz"));
      break;
    } catch {
      // no such go
    }
  }
  if (process.env.HOME) candidates.push(join(process.env.HOME, "go", "bin", "ghz"));
  return candidates.find((path) => existsSync(path));
}

/** `choice`: "ghz", "node", or "auto" (ghz when installed). */
export function pickLoadGenerator(choice: string): LoadGenerator {
  if (choice !== "node") {
    const ghz = findGhz();
    if (ghz) return ghzGenerator(ghz);
    if (choice === "ghz") throw new Error("ghz not found: go install github.com/bojand/ghz/cmd/ghz@v0.121.0");
  }
  return nodeGenerator();
}

// Load generators still running when the bench exits (interrupted) are killed.
const running = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

function run(file: string, args: readonly string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { cwd: REPO, maxBuffer: 64 * 1024 * 1024, timeout: timeoutMs, killSignal: "SIGKILL" },
      (error, stdout, stderr) => {
        running.delete(child);
        if (error) reject(new Error(`${file} failed: ${error.message}\n${stderr}`));
        else resolve(stdout);
      },
    );
    running.add(child);
  });
}

interface GhzReport {
  count: number;
  total: number;
  statusCodeDistribution?: Record<string, number>;
  errorDistribution?: Record<string, number>;
  latencyDistribution?: { percentage: number; latency: number }[] | null;
}

function ghzGenerator(path: string): LoadGenerator {
  return {
    name: `ghz (${path})`,
    async run(spec) {
      const n = spec.users === undefined ? "{{.RequestNumber}}" : `{{mod .RequestNumber ${spec.users}}}`;
      const data: Record<string, string> = { user_id: `${spec.prefix}${n}` };
      if (spec.payload) data.payload = Buffer.from(spec.payload).toString("base64");
      const args = [
        "--insecure",
        "--proto",
        PROTO,
        "--import-paths",
        "proto",
        "--call",
        SUBMIT,
        "--data",
        JSON.stringify(data),
        "--concurrency",
        String(spec.concurrency),
        "--connections",
        String(spec.connections),
        "--timeout",
        "20s",
        "--format",
        "json",
      ];
      if (spec.durationSeconds !== undefined) {
        args.push("--duration", `${spec.durationSeconds}s`, "--duration-stop", "wait");
      } else {
        // Not --max-duration: ghz then ignores --total. The process timeout bounds it.
        args.push("--total", String(spec.total ?? 1000));
      }
      args.push(spec.target);
      const report = JSON.parse(await run(path, args, (spec.maxSeconds + 30) * 1000)) as GhzReport;
      const codes = report.statusCodeDistribution ?? {};
      const ok = codes.OK ?? 0;
      const errors: Record<string, number> = {};
      for (const [code, count] of Object.entries(codes)) if (code !== "OK") errors[code] = count;
      const seconds = report.total / 1e9;
      const at = (p: number): number =>
        (report.latencyDistribution ?? []).find((entry) => entry.percentage === p)?.latency ?? NaN;
      return {
        generator: "ghz",
        count: report.count,
        ok,
        errors,
        seconds,
        rps: ok / seconds,
        p50Ms: at(50) / 1e6,
        p99Ms: at(99) / 1e6,
      };
    },
  };
}

function nodeGenerator(): LoadGenerator {
  return {
    name: "bench/load.ts (grpc-js)",
    async run(spec) {
      const args = [
        "--import",
        "tsx",
        fileURLToPath(new URL("./load.ts", import.meta.url)),
        JSON.stringify({ ...spec, payload: spec.payload ? Buffer.from(spec.payload).toString("base64") : undefined }),
      ];
      return JSON.parse(await run(process.execPath, args, (spec.maxSeconds + 30) * 1000)) as LoadResult;
    },
  };
}
