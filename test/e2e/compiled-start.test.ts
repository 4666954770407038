// `npm start` runs the compiled dist/ (as bundled into dist/bundle), not
// TypeScript: with a fresh build (built here first if src/ changed since the
// last), the primary says it runs dist/, and each worker's own list of the
// scripts it compiled (the debug line "worker code", from an in-process
// inspector session) holds no .ts file and nothing of tsx or esbuild, its
// command line no loader flag. A .ts
// handler module brings tsx into the workers that import it, and the same
// list shows it, so the check can see a loader when one is there. With a
// source newer than the build (in a copy of the tree), bin/tollgate.js runs
// the sources through tsx rather than stale code, and says so. Health, served
// by grpc-health-check, runs none of @grpc/proto-loader's or protobufjs' code
// in a worker from dist/ (the bundle gives it src/grpc/health-definition.ts),
// as the workers' own V8 coverage shows, and Check and Watch answer.
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, utimesSync } from "node:fs";
import { connect } from "node:http2";
import { tmpdir } from "node:os";
import { join, resolve, sep } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Code } from "@connectrpc/connect";
import { HealthCheckResponse_ServingStatus } from "../../gen/ts/grpc/health/v1/health_pb.js";
import { expectCode, pollUntil } from "../support/expect.js";
import { usePrivateRedis } from "../support/fixture.js";
import { describeRun, runCommand } from "../support/command.js";
import { checkStatus, healthClient } from "../support/health.js";
import { startServeProcess, type ServeProcess } from "../support/serve-process.js";
import { openGrpcStream } from "../support/grpc-stream.js";

const ROOT = resolve(".");
/** Where bin/tollgate.js runs the compiled code from: dist/src, bundled by scripts/build.js. */
const BUNDLE = join(ROOT, "dist", "bundle", "cli") + sep;
const FIXTURE_HANDLERS = fileURLToPath(new URL("../fixtures/handlers.ts", import.meta.url));
const ctx = usePrivateRedis("compiled-start");

interface WorkerCode {
  readonly pid: number;
  readonly worker: number;
  readonly file: string;
  readonly execArgv: string[];
  readonly scripts: number;
  readonly typescript: string[];
}

const running = new Set<ServeProcess>();
let copy: string | undefined;

before(async () => {
  // Builds only when dist/ is missing or older than a source.
  const build = await runCommand(process.execPath, ["scripts/build.js", "--if-stale"], { timeoutMs: 120_000 });
  assert.equal(build.code, 0, `the build: ${describeRun(build)}`);
});
after(async () => {
  for (const server of running) {
    server.child.kill("SIGTERM");
    await server.exited;
  }
  if (copy) rmSync(copy, { recursive: true, force: true });
});

function linesOf(server: ServeProcess): { msg: string; [field: string]: unknown }[] {
  return server
    .output()
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as { msg: string });
}

async function serve(env: Record<string, string>, bin?: string): Promise<ServeProcess> {
  const server = await startServeProcess(
    {
      TOLLGATE_REDIS_URL: ctx.redis.url,
      TOLLGATE_HOST: "127.0.0.1",
      TOLLGATE_PORT: "0",
      TOLLGATE_WORKERS: "2",
      TOLLGATE_DATA_DIR: join(ctx.dir, `data-${running.size}`),
      TOLLGATE_LOG_LEVEL: "debug",
      ...env,
    },
    30_000,
    bin,
  );
  running.add(server);
  return server;
}

async function stop(server: ServeProcess): Promise<void> {
  server.child.kill("SIGTERM");
  await server.exited;
  running.delete(server);
}

/** Each worker's "worker code" line, once both workers have logged theirs. */
async function workerCode(server: ServeProcess): Promise<WorkerCode[]> {
  return pollUntil("both workers' code lines", () => {
    const lines = linesOf(server).filter((line) => line.msg === "worker code") as unknown as WorkerCode[];
    return lines.length === 2 ? lines : undefined;
  });
}

/** A script's functions as V8 coverage (NODE_V8_COVERAGE) lists them; the first range is the whole function's. */
interface Coverage {
  readonly result: { url: string; functions: { functionName: string; ranges: { count: number }[] }[] }[];
}

/**
 * The packages whose CommonJS modules ran in process `pid` from the bundle,
 * by its coverage: esbuild wraps each such module in a function named after
 * its path (".../node_modules/protobufjs/src/root.js"), which counts a call
 * when the module is first required.
 */
function packagesRun(coverage: string, pid: number): { ran: Set<string>; bundled: Set<string> } {
  const file = readdirSync(coverage).find((name) => name.startsWith(`coverage-${pid}-`));
  assert.ok(file, `process ${pid} wrote its coverage: ${readdirSync(coverage).join(", ")}`);
  const { result } = JSON.parse(readFileSync(join(coverage, file), "utf8")) as Coverage;
  const ran = new Set<string>();
  const bundled = new Set<string>();
  for (const script of result.filter(({ url }) => url.startsWith(pathToFileURL(BUNDLE).href))) {
    for (const { functionName, ranges } of script.functions) {
      // The last node_modules/ of the path: a package's own copy of another is that other.
      const name = /.*node_modules\/((?:@[^/]+\/)?[^/]+)\/.*\.js$/.exec(functionName)?.[1];
      if (!name) continue;
      bundled.add(name);
      if ((ranges[0]?.count ?? 0) > 0) ran.add(name);
    }
  }
  return { ran, bundled };
}

/** One gRPC call of raw bytes on its own HTTP/2 connection; resolves with its grpc-status. */
function rawCall(port: number, path: string, message: Buffer): Promise<string> {
  const session = connect(`http://127.0.0.1:${port}`);
  session.on("error", () => {});
  return new Promise<string>((resolve) => {
    const stream = openGrpcStream(session, path);
    let status = "no-status";
    stream.on("response", (headers) => (status = String(headers["grpc-status"] ?? status)));
    stream.on("trailers", (trailers) => (status = String(trailers["grpc-status"] ?? status)));
    stream.on("close", () => resolve(status));
    stream.on("error", () => {});
    stream.resume();
    const header = Buffer.alloc(5);
    header.writeUInt32BE(message.length, 1);
    stream.end(Buffer.concat([header, message]));
  }).finally(() => session.close());
}

function codeOf(server: ServeProcess): unknown {
  return linesOf(server).find((line) => line.msg === "starting workers")?.code;
}

test("npm start with a fresh build: the workers run dist/ and no TypeScript loader", async () => {
  const server = await serve({});
  assert.equal(codeOf(server), "dist", "the primary runs dist/");
  const workers = await workerCode(server);
  for (const worker of workers) {
    assert.ok(worker.file.startsWith(BUNDLE), `the worker's code is dist/'s bundle: ${worker.file}`);
    assert.deepEqual(worker.execArgv, [], "no node flags (no --import or --loader)");
    assert.ok(worker.scripts > 100, `the list holds every compiled script (${worker.scripts})`);
    assert.deepEqual(worker.typescript, [], "no .ts file, no tsx, no esbuild");
    // The process itself, as the kernel has it: node bin/tollgate.js serve, no loader in NODE_OPTIONS.
    const argv = readFileSync(`/proc/${worker.pid}/cmdline`, "utf8").split("\0").filter(Boolean);
    assert.deepEqual(
      argv.slice(1),
      [join(ROOT, "bin", "tollgate.js"), "serve"],
      `worker ${worker.worker}'s command line`,
    );
    const environ = readFileSync(`/proc/${worker.pid}/environ`, "utf8").split("\0");
    const nodeOptions = environ.find((entry) => entry.startsWith("NODE_OPTIONS="));
    assert.ok(!/tsx|--import|--loader|--require/.test(nodeOptions ?? ""), `NODE_OPTIONS: ${nodeOptions}`);
  }
  await stop(server);
});

test("health from dist/: no @grpc/proto-loader or protobufjs code runs in a worker, and Check and Watch answer", async () => {
  const coverage = join(ctx.dir, "coverage");
  const server = await serve({ NODE_V8_COVERAGE: coverage });
  assert.equal(codeOf(server), "dist");
  const workers = await workerCode(server);
  for (const worker of workers) assert.ok(worker.file.startsWith(BUNDLE), worker.file);

  const client = healthClient(`http://127.0.0.1:${server.port}`);
  assert.equal(await checkStatus(client), "SERVING");
  assert.equal(await checkStatus(client, "tollgate.v1.TaskService"), "SERVING");
  await expectCode(checkStatus(client, "no.such.Service"), Code.NotFound, "Check of an unknown service");
  // A request that does not decode (field 0, wire type 7): the deserializer throws, and grpc-js answers INTERNAL.
  assert.equal(await rawCall(server.port, "/grpc.health.v1.Health/Check", Buffer.from([0x07])), "13");

  // Watch: the status at once, then its change when the server begins to stop.
  const watching = new AbortController();
  const watch = client.watch({ service: "" }, { signal: watching.signal })[Symbol.asyncIterator]();
  const { SERVING, NOT_SERVING } = HealthCheckResponse_ServingStatus;
  assert.equal((await watch.next()).value?.status, SERVING);
  server.child.kill("SIGTERM");
  assert.equal((await watch.next()).value?.status, NOT_SERVING);
  watching.abort();
  await server.exited;
  running.delete(server);

  for (const worker of workers) {
    const { ran, bundled } = packagesRun(coverage, worker.pid);
    // What the check rests on: the bundle's CommonJS modules show, and those that ran are told apart.
    assert.ok(ran.has("grpc-health-check"), `grpc-health-check ran: ${[...ran].join(", ")}`);
    assert.ok(ran.has("@grpc/grpc-js"), `grpc-js ran: ${[...ran].join(", ")}`);
    const protobufjs = [...ran].filter((name) => /^(protobufjs|@protobufjs\/|@grpc\/proto-loader$)/.test(name));
    assert.deepEqual(
      protobufjs,
      [],
      `worker ${worker.worker} ran proto-loader or protobufjs (bundled: ${[...bundled].join(", ")})`,
    );
  }
});

test("a .ts handler module: tsx is loaded for it, and the same check sees it", async () => {
  const server = await serve({ TOLLGATE_HANDLER: FIXTURE_HANDLERS });
  assert.equal(codeOf(server), "dist");
  for (const worker of await workerCode(server)) {
    assert.ok(worker.file.startsWith(BUNDLE), worker.file);
    assert.ok(
      worker.typescript.some((url) => url.includes("/test/fixtures/handlers.ts")),
      `the handler compiled from TypeScript: ${worker.typescript.join(", ")}`,
    );
    assert.ok(
      worker.typescript.some((url) => url.includes("/node_modules/tsx/")),
      `tsx loaded: ${worker.typescript.join(", ")}`,
    );
  }
  await stop(server);
});

test("a source newer than dist/ (in a copy of the tree): the sources run through tsx, with a warning", async () => {
  copy = mkdtempSync(join(tmpdir(), "tollgate-stale-"));
  for (const path of ["package.json", "bin", "src", "gen/ts", "dist"]) {
    cpSync(join(ROOT, path), join(copy, path), { recursive: true, preserveTimestamps: true });
  }
  symlinkSync(join(ROOT, "node_modules"), join(copy, "node_modules"));
  const bin = join(copy, "bin", "tollgate.js");

  const fresh = await serve({}, bin);
  assert.equal(codeOf(fresh), "dist", `the copy's build is fresh: ${fresh.output()}`);
  await stop(fresh);

  const later = new Date(Date.now() + 60_000);
  utimesSync(join(copy, "src", "core", "rate-policy.ts"), later, later);
  const stale = await serve({}, bin);
  assert.equal(codeOf(stale), "src", "stale dist/: the sources");
  const warning = linesOf(stale).find((line) => line.level === 40 && String(line.msg).includes("through tsx"));
  assert.equal(warning?.why, "src/core/rate-policy.ts is newer than dist/", stale.output());
  for (const worker of await workerCode(stale)) {
    assert.equal(worker.file, join(copy, "src", "cluster", "loaded-code.ts"), "the workers run the sources too");
    assert.ok(worker.typescript.length > 0, "through tsx");
  }
  await stop(stale);
});
