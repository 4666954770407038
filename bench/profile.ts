// Summaries of V8 .cpuprofile files (node --cpu-prof): where the sampled time
// went, by function (self time) and by module.
//
//   npx tsx bench/profile.ts <file.cpuprofile | dir> ...   prints the summary
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { originalPosition } from "./bundle-source.js";
import { REPO } from "./loadgen.js";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  /** Sampled time, ms, excluding (idle). */
  readonly busyMs: number;
  readonly idleMs: number;
  /** [label, self ms], most first. */
  readonly functions: readonly [string, number][];
  readonly modules: readonly [string, number][];
  /** Time with each src/ function on the stack (its callees included), most first. */
  readonly inclusiveSrc: readonly [string, number][];
  /** Per function label: [caller chain, ms], most first (the three frames above it). */
  readonly callers: ReadonlyMap<string, readonly [string, number][]>;
}

/** Where a script lives: src/x.ts, a package name, node:internal/…, or a V8 pseudo-frame. */
export function moduleOf(url: string, functionName: string): string {
  if (url === "") return functionName.startsWith("(") ? functionName : "(native)";
  const path = url.replace(/^file:\/\//, "");
  const packaged = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  if (packaged) return packaged[1]!;
  if (path.startsWith("node:")) return path;
  return relative(REPO, path) || path;
}

function label(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const where = url === "" ? "" : ` ${moduleOf(url, functionName)}:${lineNumber + 1}`;
  return `${functionName || "(anonymous)"}${where}`;
}

export function summariseProfiles(files: readonly string[]): ProfileSummary {
  const functions = new Map<string, number>();
  const modules = new Map<string, number>();
  const callers = new Map<string, Map<string, number>>();
  const inclusiveSrc = new Map<string, number>();
  let busyMs = 0;
  let idleMs = 0;
  for (const file of files) {
    const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
    // Frames in the bundle (dist/bundle) named by the src/ file or package they came from.
    for (const node of profile.nodes) {
      const { url, lineNumber, columnNumber } = node.callFrame;
      const original = originalPosition(url, lineNumber, columnNumber);
      node.callFrame = { ...node.callFrame, url: original.url, lineNumber: original.line };
    }
    const byId = new Map(profile.nodes.map((node) => [node.id, node]));
    const parentOf = new Map<number, number>();
    for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
    const chainOf = (id: number): string => {
      const chain: string[] = [];
      for (let at = parentOf.get(id); at !== undefined && chain.length < 3; at = parentOf.get(at)) {
        const node = byId.get(at);
        if (node) chain.push(label(node));
      }
      return chain.join(" < ");
    };
    profile.samples.forEach((id, i) => {
      const node = byId.get(id);
      if (!node) return;
      // timeDeltas[i] is the time before sample i; attribute it to sample i.
      const ms = Math.max(0, profile.timeDeltas[i] ?? 0) / 1000;
      if (node.callFrame.functionName === "(idle)") {
        idleMs += ms;
        return;
      }
      const onStack = new Set<string>();
      for (let at: number | undefined = id; at !== undefined; at = parentOf.get(at)) {
        const frame = byId.get(at);
        if (!frame) continue;
        // The profiler starting itself (bench/cpu-profile.mjs) is not the server's work.
        if (frame.callFrame.url.endsWith("bench/cpu-profile.mjs")) return;
        if (moduleOf(frame.callFrame.url, frame.callFrame.functionName).match(/^(dist\/)?src\//))
          onStack.add(label(frame));
      }
      busyMs += ms;
      const fn = label(node);
      functions.set(fn, (functions.get(fn) ?? 0) + ms);
      for (const name of onStack) inclusiveSrc.set(name, (inclusiveSrc.get(name) ?? 0) + ms);
      const chains = callers.get(fn) ?? new Map<string, number>();
      const chain = chainOf(id);
      chains.set(chain, (chains.get(chain) ?? 0) + ms);
      callers.set(fn, chains);
      const mod = moduleOf(node.callFrame.url, node.callFrame.functionName);
      modules.set(mod, (modules.get(mod) ?? 0) + ms);
    });
  }
  const sorted = (map: Map<string, number>): [string, number][] => [...map].sort((a, b) => b[1] - a[1]);
  return {
    busyMs,
    idleMs,
    functions: sorted(functions),
    modules: sorted(modules),
    inclusiveSrc: sorted(inclusiveSrc),
    callers: new Map([...callers].map(([fn, chains]) => [fn, sorted(chains)])),
  };
}

export function printProfileSummary(summary: ProfileSummary, top = 25): void {
  const pct = (ms: number): string => `${((100 * ms) / summary.busyMs).toFixed(1).padStart(5)}%`;
  console.log(
    `  sampled ${(summary.busyMs / 1000).toFixed(1)} s busy, ${(summary.idleMs / 1000).toFixed(1)} s idle (all profiles together)`,
  );
  console.log(`  self time by module:`);
  for (const [name, ms] of summary.modules.slice(0, 15)) console.log(`    ${pct(ms)}  ${name}`);
  console.log(
    `  time under Tollgate's own functions (src/ or its compiled dist/src/, callees included; async work counts where it resumes):`,
  );
  for (const [name, ms] of summary.inclusiveSrc.slice(0, 15)) console.log(`    ${pct(ms)}  ${name}`);
  console.log(`  top ${top} functions by self time:`);
  summary.functions.slice(0, top).forEach(([name, ms], i) => {
    console.log(`    ${pct(ms)}  ${name}`);
    // Where the heaviest ones are called from.
    if (i < 8)
      for (const [chain, chainMs] of (summary.callers.get(name) ?? []).slice(0, 2)) {
        if (chain) console.log(`             ${pct(chainMs)}  < ${chain}`);
      }
  });
}

export function profileFiles(paths: readonly string[]): string[] {
  return paths.flatMap((path) =>
    statSync(path).isDirectory()
      ? readdirSync(path)
          .filter((name) => name.endsWith(".cpuprofile"))
          .map((name) => join(path, name))
      : [path],
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  printProfileSummary(summariseProfiles(profileFiles(process.argv.slice(2))));
}
