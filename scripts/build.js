#!/usr/bin/env node
// npm run build [-- --if-stale], and `prepare` (so `npm ci` and `npm pack` run
// it): compiles src/ and gen/ts (tsconfig.build.json) to dist/, copies src/'s
// other files (the Lua scripts) beside the JavaScript, bundles the `tollgate`
// command into dist/bundle (what bin/tollgate.js runs; see bundleCommand),
// bundles the dashboard (src/dashboard) into dist/dashboard, and writes
// dist/build-stamp (bin/build-stamp.js), which bin/tollgate.js compares with
// the sources to choose dist/ or tsx. Built in a folder of its own and then
// swapped in, so a tollgate running from dist/ never reads a half-written one.
// --if-stale: nothing to do when dist/ is up to date.
// Without TypeScript (`npm ci --omit=dev`) it builds nothing and says so;
// bin/tollgate.js then runs the sources through tsx.
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, renameSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, sep } from "node:path";
import { pathToFileURL } from "node:url";
import { DIST, ROOT, STAMP, distState } from "../bin/build-stamp.js";

if (process.argv.includes("--if-stale") && distState().fresh) process.exit(0);

let tsc;
try {
  tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
} catch {
  console.error(
    "tollgate build: typescript is not installed (npm ci --omit=dev?); dist/ not built, tollgate runs the sources through tsx",
  );
  process.exit(0);
}

// Dated before tsc reads anything: a source saved during the build is newer.
const began = new Date();
const out = join(ROOT, `dist.building-${process.pid}`);
rmSync(out, { recursive: true, force: true });
try {
  const compiled = spawnSync(process.execPath, [tsc, "-p", join(ROOT, "tsconfig.build.json"), "--outDir", out], {
    stdio: ["ignore", "inherit", "inherit"],
  });
  if (compiled.status !== 0) {
    console.error("tollgate build: tsc failed; dist/ left as it was");
    process.exit(1);
  }
  cpSync(join(ROOT, "src"), join(out, "src"), {
    recursive: true,
    filter: (path) => !path.endsWith(".ts"),
  });
  await bundleCommand(out);
  // The dashboard, bundled for the browser by the module that serves it.
  const { writeDashboard } = await import(pathToFileURL(join(out, "src", "cluster", "dashboard-assets.js")).href);
  await writeDashboard(join(out, "dashboard"), join(ROOT, "src", "dashboard"));
  writeFileSync(
    join(out, "build-stamp"),
    "Written by scripts/build.js, dated when the build began; see bin/build-stamp.js.\n",
  );
  utimesSync(join(out, "build-stamp"), began, began);
  swapIn(out);
} finally {
  rmSync(out, { recursive: true, force: true });
}
if (!existsSync(STAMP)) throw new Error("dist/build-stamp is missing after the build");

/**
 * The `tollgate` command, dist/src/cli/main.js and everything it imports (its
 * packages too), bundled by esbuild into dist/bundle/cli: a worker then
 * loads a few files instead of some 500 modules, each resolved and read on
 * its own (about 150 ms of its start). Split at the dynamic imports, so each
 * role still loads only its own code (the primary no gRPC server, a worker no
 * dashboard or web API, a client command neither). Left out, loaded from
 * node_modules when used: tsx (a TypeScript handler), esbuild (the dashboard
 * bundled at start), OpenTelemetry's SDK and exporter (with an OTLP endpoint
 * only). Its API is bundled: prom-client loads it in every process, and its
 * copies share one global state and context keys by design, so the
 * bundle's and the SDK's work together. The bundle sits as deep in dist/ as the
 * compiled command (dist/src/cli), so paths the modules take from their own
 * URL still hold (../../dashboard); the Lua scripts are copied beside it.
 * grpc-health-check gets src/grpc/health-definition.ts as its
 * @grpc/proto-loader (healthWithoutProtoLoader). ESM output, so CommonJS
 * packages get `require`, `__filename` and `__dirname` from the banner.
 */
async function bundleCommand(folder) {
  const { build } = await import("esbuild");
  const outdir = join(folder, "bundle", "cli");
  await build({
    entryPoints: [join(folder, "src", "cli", "main.js")],
    outdir,
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    external: [
      "tsx",
      "tsx/*",
      "esbuild",
      // What tracing.ts imports; @opentelemetry/api is bundled (prom-client requires it).
      "@opentelemetry/core",
      "@opentelemetry/exporter-trace-otlp-http",
      "@opentelemetry/resources",
      "@opentelemetry/sdk-trace-node",
    ],
    banner: {
      js: [
        'import { createRequire as __tollgateCreateRequire } from "node:module";',
        'import { dirname as __tollgateDirname } from "node:path";',
        'import { fileURLToPath as __tollgateFileURLToPath } from "node:url";',
        "const require = __tollgateCreateRequire(import.meta.url);",
        "const __filename = __tollgateFileURLToPath(import.meta.url);",
        "const __dirname = __tollgateDirname(__filename);",
      ].join("\n"),
    },
    // Beside each file, without the sources' text: stack traces under
    // `node --enable-source-maps` and the bench's profiles (bench/bundle-source.ts)
    // then name src/ files and packages instead of chunks.
    sourcemap: "linked",
    sourcesContent: false,
    plugins: [healthWithoutProtoLoader(folder)],
    logLevel: "warning",
  });
  cpSync(join(ROOT, "src", "redis", "lua"), join(outdir, "lua"), { recursive: true });
}

/**
 * grpc-health-check's top level has @grpc/proto-loader parse its health.proto
 * with protobufjs, about 60 ms of every worker's start (issue 16). Its import
 * of @grpc/proto-loader, and only its, resolves to the compiled
 * src/grpc/health-definition.ts instead: its `loadSync` gives the same
 * service definition from the protobuf-es descriptors a worker loads anyway.
 * grpc-js' channelz and ORCA keep the real one (loaded only if used).
 */
function healthWithoutProtoLoader(folder) {
  const definition = join(folder, "src", "grpc", "health-definition.js");
  return {
    name: "tollgate-health-definition",
    setup(build) {
      build.onResolve({ filter: /^@grpc\/proto-loader$/ }, ({ importer }) =>
        importer.split(sep).includes("grpc-health-check") ? { path: definition } : undefined,
      );
    },
  };
}

/** Replaces dist/ with `out`: two renames, retried if another build swaps at the same moment. */
function swapIn(folder) {
  const old = join(ROOT, `dist.old-${process.pid}`);
  for (let attempt = 0; ; attempt++) {
    try {
      renameSync(DIST, old);
    } catch (error) {
      if (error.code !== "ENOENT") throw error;
    }
    try {
      renameSync(folder, DIST);
      break;
    } catch (error) {
      if (attempt >= 5 || (error.code !== "ENOTEMPTY" && error.code !== "EEXIST")) throw error;
    } finally {
      rmSync(old, { recursive: true, force: true });
    }
  }
}
