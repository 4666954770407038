// On-CPU profiles of `tollgate serve`'s workers with Linux perf, beside V8's
// sampling profiler (bench/profile.ts). V8's profiler samples on a wall-clock
// timer: a worker descheduled inside a system call (a socket write that woke
// Redis on a busy 2-core machine) is sampled in that call all the while, so
// system calls look far costlier than the CPU they use. perf samples only
// what runs on a CPU, the kernel and V8's helper threads (garbage collection,
// compilers) included. The workers run with --perf-basic-prof so JavaScript
// frames have names, mapped to src/ files and packages through the bundle's
// source maps (bench/bundle-source.ts).
//
//   npx tsx bench/perf-profile.ts <perf.data>   prints the summary of a kept recording
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import { originalPosition } from "./bundle-source.js";
import { moduleOf } from "./profile.js";

/** NODE_OPTIONS for the processes perf records: names for JIT frames (in /tmp/perf-<pid>.map). */
export const PERF_NODE_OPTIONS = "--perf-basic-prof-only-functions --interpreted-frames-native-stack";

export function perfAvailable(): boolean {
  return spawnSync("perf", ["--version"], { stdio: "ignore" }).status === 0;
}

export interface PerfRecording {
  stop(): Promise<void>;
}

/** Starts `perf record` (call stacks, 499 Hz) of every thread of `pids`, into `output`. */
export function recordPerf(pids: readonly number[], output: string): PerfRecording {
  const child: ChildProcess = spawn(
    "perf",
    ["record", "--quiet", "-F", "499", "-g", "-o", output, "-p", pids.join(",")],
    { stdio: "ignore" },
  );
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    stop: async () => {
      child.kill("SIGINT");
      await exited;
    },
  };
}

export interface PerfSummary {
  readonly samples: number;
  /** [category, samples], most first: garbage collection, compiling, kernel by system call, or a module's JavaScript. */
  readonly categories: readonly [string, number][];
  /** [JavaScript function (where it came from), samples], the innermost JavaScript frame of each sample. */
  readonly functions: readonly [string, number][];
}

interface Frame {
  readonly symbol: string;
  readonly dso: string;
}

const GC =
  /v8::internal::(Heap::|Scavenger|MarkCompact|ConcurrentMarking|Sweeper|MinorGC|MinorMarkSweep|IncrementalMarking|MarkingVisitor|MarkingBarrier|ScavengeJob|MemoryAllocator|ArrayBufferSweeper|GlobalHandles::)/;
const COMPILER =
  /v8::internal::(compiler::|maglev::|baseline::|Compiler::|OptimizingCompileDispatcher|interpreter::BytecodeGenerator|Parser)|Builtins_CompileLazy/;
const JS_FRAME = /^JS:[*~^+-]?(.*) (\S+):(\d+):(\d+)$/;

/** One sample's category: what it is doing, named by its innermost JavaScript frame unless it is the runtime's own work. */
function categorise(frames: readonly Frame[]): { category: string; fn?: string } {
  if (frames.some((frame) => GC.test(frame.symbol))) return { category: "(garbage collection)" };
  if (frames.some((frame) => COMPILER.test(frame.symbol))) return { category: "(V8 compiling)" };
  const leaf = frames[0];
  if (leaf?.dso === "[kernel.kallsyms]") {
    const call = frames.map((frame) => /__x64_sys_(\w+)/.exec(frame.symbol)?.[1]).find(Boolean);
    return { category: call ? `(kernel: ${call})` : "(kernel: interrupts, scheduling)" };
  }
  for (const frame of frames) {
    const js = JS_FRAME.exec(frame.symbol);
    if (!js) continue;
    const [, name, url, line, column] = js as unknown as [string, string, string, string, string];
    const original = originalPosition(url, Number(line) - 1, Number(column) - 1);
    const module = moduleOf(original.url, name);
    const file = original.url.replace(/^.*node_modules\//, "").replace(/^file:\/\/.*?\/dist\//, "dist/");
    return { category: module, fn: `${name || "(anonymous)"} ${file}:${original.line + 1}` };
  }
  if (frames.some((frame) => /nghttp2/.test(frame.symbol))) return { category: "(native: nghttp2)" };
  return { category: `(native: ${leaf?.dso.replace(/^.*\//, "") ?? "?"})` };
}

/** Reads a recording (`perf script`, while the processes' /tmp/perf-<pid>.map files exist). */
export function summarisePerf(data: string): PerfSummary {
  const script = spawnSync("perf", ["script", "-i", data, "-F", "ip,sym,dso"], {
    encoding: "utf8",
    maxBuffer: 1 << 30,
  });
  if (script.status !== 0) throw new Error(`perf script failed: ${script.stderr}`);
  const categories = new Map<string, number>();
  const functions = new Map<string, number>();
  let samples = 0;
  const add = (map: Map<string, number>, key: string): void => {
    map.set(key, (map.get(key) ?? 0) + 1);
  };
  for (const block of script.stdout.split(/\n\s*\n/)) {
    const frames: Frame[] = [];
    for (const line of block.split("\n")) {
      const frame = /^\s*[0-9a-f]+\s+(.*?)(?:\+0x[0-9a-f]+)?\s+\((.*)\)$/.exec(line);
      if (frame) frames.push({ symbol: frame[1]!, dso: frame[2]! });
    }
    if (frames.length === 0) continue;
    samples++;
    const { category, fn } = categorise(frames);
    add(categories, category);
    if (fn) add(functions, fn);
  }
  const sorted = (map: Map<string, number>): [string, number][] => [...map].sort((a, b) => b[1] - a[1]);
  return { samples, categories: sorted(categories), functions: sorted(functions) };
}

export function printPerfSummary(summary: PerfSummary, top = 20): void {
  const pct = (n: number): string => `${((100 * n) / summary.samples).toFixed(1).padStart(5)}%`;
  console.log(`  ${summary.samples} on-CPU samples (every thread of the workers)`);
  console.log(`  by what ran (JavaScript by the module of its innermost JavaScript frame, V8 builtins included):`);
  for (const [name, n] of summary.categories.slice(0, top)) console.log(`    ${pct(n)}  ${name}`);
  console.log(`  top ${top} JavaScript functions (innermost JavaScript frame):`);
  for (const [name, n] of summary.functions.slice(0, top)) console.log(`    ${pct(n)}  ${name}`);
}

/** Removes the JIT symbol maps node wrote for `pids`. */
export function removePerfMaps(pids: readonly number[]): void {
  for (const pid of pids) rmSync(`/tmp/perf-${pid}.map`, { force: true });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  printPerfSummary(summarisePerf(process.argv[2] ?? "perf.data"));
}
