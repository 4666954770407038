#!/usr/bin/env node
// `npm start` and the `tollgate` command. Runs the compiled JavaScript in
// dist/, as bundled into dist/bundle (`npm run build`; `npm ci` builds it
// through `prepare`), when it is up to date with src/ and gen/ts
// (bin/build-stamp.js); otherwise the TypeScript sources through tsx, so an
// edit is never run stale (`tollgate serve` then logs a warning). Forked cluster workers run this file again and take what
// their primary chose, without looking again.
import cluster from "node:cluster";
import { distState } from "./build-stamp.js";

// TOLLGATE_CODE, "dist" or "src": what the primary chose, passed on to its
// workers; with "src", TOLLGATE_CODE_WHY says why (the primary logs it).
let code = cluster.isWorker ? process.env.TOLLGATE_CODE : undefined;
if (code !== "dist" && code !== "src") {
  const state = distState();
  code = state.fresh ? "dist" : "src";
  process.env.TOLLGATE_CODE = code;
  if (!state.fresh) process.env.TOLLGATE_CODE_WHY = state.why;
}
let entry = new URL("../dist/bundle/cli/main.js", import.meta.url);
if (code === "src") {
  const { register } = await import("tsx/esm/api");
  register();
  entry = new URL("../src/cli/main.ts", import.meta.url);
}
const { main } = await import(entry.href);
const exitCode = await main(process.argv.slice(2));
if (exitCode >= 0) process.exitCode = exitCode;
