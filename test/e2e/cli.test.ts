// The `tollgate` executable as a user runs it. A bad
// setting or a missing redis-server exits 2 with one clear line; with no
// TOLLGATE_REDIS_URL it runs its own redis-server under the data dir, serves,
// and on SIGTERM exits 0 leaving no redis-server behind.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, describe, test } from "node:test";
import { createTollgateClient } from "../../src/client/client.js";
import { pollUntil } from "../support/expect.js";
import { checkStatus, healthClient } from "../support/health.js";
import { freePort } from "../../src/redis/embedded-redis.js";
import { Disposition } from "../../gen/ts/tollgate/v1/task_service_pb.js";

const BIN = resolve("bin/tollgate.js");

/** The test's environment without any TOLLGATE_* setting, plus `extra`. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith("TOLLGATE_")) env[name] = value;
  return { ...env, ...extra };
}

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

const children = new Set<ChildProcess>();
const tempDirs: string[] = [];

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

function start(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): { child: ChildProcess; exited: Promise<Exit> } {
  const child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<Exit>((resolveExit, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) => {
      children.delete(child);
      resolveExit({ code, signal, stdout, stderr });
    });
  });
  return { child, exited };
}

/** Runs to completion; fails the test if it takes longer than `timeoutMs`. */
async function runToExit(command: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 15_000): Promise<Exit> {
  const { child, exited } = start(command, args, env);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${command} ${args.join(" ")} did not exit within ${timeoutMs} ms`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** True while `pid` is a live (not zombie) process. */
async function alive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  // Field 3, after the parenthesised command name, is the state; Z is a zombie.
  return !/\)\s+Z\s/.test(stat);
}

const strayPids = new Set<number>();

after(async () => {
  for (const child of children) child.kill("SIGKILL");
  for (const pid of strayPids) {
    if (await alive(pid)) process.kill(pid, "SIGKILL");
  }
  await Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

function oneLine(text: string): string {
  const lines = text.trim().split("\n");
  assert.equal(lines.length, 1, `one line of error, got:\n${text}`);
  return lines[0]!;
}

describe("configuration errors exit 2 with one line", () => {
  test("a bad TOLLGATE_PORT", async () => {
    const dataDir = await tempDir("tollgate-cli-");
    const result = await runToExit(
      process.execPath,
      [BIN, "serve"],
      cleanEnv({
        TOLLGATE_PORT: "not-a-port",
        TOLLGATE_DATA_DIR: dataDir,
        TOLLGATE_METRICS_PORT: "0",
      }),
    );
    assert.equal(result.code, 2, `exit code (stderr: ${result.stderr})`);
    const line = oneLine(result.stderr);
    assert.match(line, /TOLLGATE_PORT/);
    assert.match(line, /not-a-port/);
    assert.ok(!existsSync(join(dataDir, "redis", "redis.pid")), "no Redis was started for a bad config");
  });

  test("a bad --port flag names the flag", async () => {
    const result = await runToExit(process.execPath, [BIN, "serve", "--port", "99999"], cleanEnv({}));
    assert.equal(result.code, 2);
    assert.match(oneLine(result.stderr), /--port/);
  });

  test("an unknown flag", async () => {
    const result = await runToExit(process.execPath, [BIN, "serve", "--no-such-flag", "1"], cleanEnv({}));
    assert.equal(result.code, 2);
    assert.match(oneLine(result.stderr), /--no-such-flag/);
  });
});

test("no TOLLGATE_REDIS_URL and no redis-server on PATH: says how to fix it and exits 2", async () => {
  // A PATH holding only node and sh: no redis-server anywhere on it.
  const bin = await tempDir("tollgate-cli-path-");
  await symlink(process.execPath, join(bin, "node"));
  await symlink("/bin/sh", join(bin, "sh"));
  const dataDir = await tempDir("tollgate-cli-");
  const result = await runToExit(join(bin, "node"), [BIN, "serve"], {
    PATH: bin,
    HOME: process.env.HOME ?? "/",
    TOLLGATE_DATA_DIR: dataDir,
    TOLLGATE_HOST: "127.0.0.1",
    TOLLGATE_PORT: String(await freePort()),
    TOLLGATE_METRICS_PORT: "0",
    TOLLGATE_WORKERS: "1",
  });
  assert.equal(result.code, 2, `exit code (stderr: ${result.stderr})`);
  const line = oneLine(result.stderr);
  assert.match(line, /redis-server/);
  assert.match(line, /install/i, "says how to install redis-server");
  assert.match(line, /TOLLGATE_REDIS_URL/, "or to set TOLLGATE_REDIS_URL");
});

test("embedded Redis: serve starts redis-server under the data dir, answers Submit, and SIGTERM exits 0 leaving no redis-server", async () => {
  const dataDir = await tempDir("tollgate-cli-");
  const port = await freePort();
  const { child, exited } = start(
    process.execPath,
    [BIN, "serve"],
    cleanEnv({
      TOLLGATE_DATA_DIR: dataDir,
      TOLLGATE_HOST: "127.0.0.1",
      TOLLGATE_PORT: String(port),
      TOLLGATE_METRICS_PORT: "0",
      TOLLGATE_WORKERS: "1",
      TOLLGATE_LOG_LEVEL: "warn",
    }),
  );
  let exitedEarly: Exit | undefined;
  void exited.then((exit) => (exitedEarly = exit));

  const address = `http://127.0.0.1:${port}`;
  const client = createTollgateClient({ baseUrl: address });
  const submitted = await pollUntil(
    "the server to answer Submit",
    async () => {
      if (exitedEarly) assert.fail(`tollgate exited early (${exitedEarly.code}): ${exitedEarly.stderr}`);
      return client.submit({ userId: "cli-user" }, { timeoutMs: 1_000 });
    },
    { timeoutMs: 20_000, intervalMs: 100 },
  );
  assert.equal(submitted.disposition, Disposition.STARTED);
  assert.equal(await checkStatus(healthClient(address)), "SERVING");

  const pidFile = join(dataDir, "redis", "redis.pid");
  const redisPid = Number((await readFile(pidFile, "utf8")).trim());
  assert.ok(Number.isInteger(redisPid) && redisPid > 0, `a pid in ${pidFile}`);
  strayPids.add(redisPid);
  assert.ok(await alive(redisPid), "the embedded redis-server runs");
  const cmdline = await readFile(`/proc/${redisPid}/cmdline`, "utf8");
  assert.match(cmdline, /redis-server/);
  assert.match(cmdline, /127\.0\.0\.1/, "loopback only");

  // The built-in handler ran the task: a line in <data dir>/tasks.log.
  await pollUntil(
    "the task's line in tasks.log",
    async () => /^cli-user-task completed at-\d+$/m.test(await readFile(join(dataDir, "tasks.log"), "utf8")),
    { timeoutMs: 15_000 },
  );

  child.kill("SIGTERM");
  const exit = await Promise.race([
    exited,
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error("no exit within 15 s of SIGTERM")), 15_000).unref(),
    ),
  ]);
  assert.equal(exit.signal, null, `exited by itself, not by ${exit.signal}`);
  assert.equal(exit.code, 0, `exit code after SIGTERM (stderr: ${exit.stderr})`);
  await pollUntil("the embedded redis-server to exit", async () => !(await alive(redisPid)), { timeoutMs: 15_000 });
  strayPids.delete(redisPid);
  assert.ok(existsSync(join(dataDir, "redis")), "Redis data stays under the data dir");
});
