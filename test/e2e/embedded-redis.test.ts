// The embedded Redis (no TOLLGATE_REDIS_URL) is restarted when it dies: on
// the same port with the same append-only file, so health returns to SERVING
// by itself and acknowledged tasks are still there.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { createTollgateClient } from "../../src/client/client.js";
import { pollUntil } from "../support/expect.js";
import { checkStatus, healthClient } from "../support/health.js";
import { startServeProcess, type ServeProcess } from "../support/serve-process.js";
import { Disposition, TaskState } from "../../gen/ts/tollgate/v1/task_service_pb.js";

interface LoggedRedis {
  readonly port: number;
  readonly redisPid: number;
}

/** The embedded redis-server's port and pid from the primary's log lines `msg`, in order. */
function loggedRedis(server: ServeProcess, msg: string): LoggedRedis[] {
  return server
    .output()
    .split("\n")
    .filter((line) => line.includes(`"msg":"${msg}"`))
    .map((line) => JSON.parse(line) as LoggedRedis);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("tollgate serve with its embedded Redis", () => {
  test("redis-server SIGKILLed: restarted on the same port, SERVING again, acknowledged tasks kept", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "tollgate-embedded-"));
    const server = await startServeProcess({
      TOLLGATE_REDIS_URL: "", // unset: the embedded redis-server
      TOLLGATE_HOST: "127.0.0.1",
      TOLLGATE_PORT: "0",
      TOLLGATE_WORKERS: "1",
      TOLLGATE_DATA_DIR: dataDir,
      TOLLGATE_RATE_LIMITS: "1/1h",
    });
    try {
      const address = `http://127.0.0.1:${server.port}`;
      const client = createTollgateClient({ baseUrl: address });
      const health = healthClient(address);
      const [started] = loggedRedis(server, "embedded redis-server started");
      assert.ok(started, `no start line:\n${server.output()}`);
      // The pid file redis-server writes, as an operator would find it.
      const pid = Number((await readFile(join(dataDir, "redis", "redis.pid"), "utf8")).trim());
      assert.ok(pid > 0 && alive(pid), `redis.pid holds ${pid}`);

      assert.equal((await client.submit({ userId: "kept" })).disposition, Disposition.STARTED);
      const queued = await client.submit({ userId: "kept" });
      assert.equal(queued.disposition, Disposition.QUEUED, "acknowledged and queued behind a 1/1h window");

      process.kill(pid, "SIGKILL");

      const restarted = await pollUntil(
        "the restart to be logged",
        () => loggedRedis(server, "embedded redis-server restarted")[0],
        {
          timeoutMs: 15_000,
        },
      );
      assert.equal(restarted.port, started.port, "same port, so the workers' clients find it");
      assert.notEqual(restarted.redisPid, pid);
      await pollUntil("SERVING again", async () => (await checkStatus(health)) === "SERVING", { timeoutMs: 15_000 });

      const { task } = await client.getTask({ taskId: queued.taskId });
      assert.equal(task?.state, TaskState.QUEUED, "the task acknowledged before the kill is still queued");
      const again = await client.submit({ userId: "kept" });
      assert.equal(again.disposition, Disposition.QUEUED);
      assert.equal(again.queuePosition, 2, "behind the task from before the kill");
      assert.equal((await client.submit({ userId: "newcomer" })).disposition, Disposition.STARTED);

      server.child.kill("SIGTERM");
      assert.equal(await server.exited, 0);
      assert.equal(alive(restarted.redisPid), false, "the restarted redis-server stops with Tollgate");
    } finally {
      server.child.kill("SIGKILL");
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
