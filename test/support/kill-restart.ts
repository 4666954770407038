// The at-least-once check both the standalone and the Cluster drain tests
// make: SIGKILL `tollgate serve` while tasks run, start it again, and every
// acknowledged task runs.
import assert from "node:assert/strict";
import { createTollgateClient } from "../../src/client/client.js";
import { pollUntil } from "./expect.js";
import { startServeProcess } from "./serve-process.js";
import { checkRepeatsOnlyAcrossKill, readFixtureLog, waitUntilAllRan } from "./task-log.js";

/** How long each fixture "slow" task runs. */
const RUN_MS = 400;

/**
 * Submits 12 tasks of the fixture kind "slow" (400 ms each) for `users`, in
 * turn, to a `tollgate serve` started with `env` (its fixture log at
 * `env.TOLLGATE_FIXTURE_LOG`), SIGKILLs it once 4 have started, starts it
 * again, and checks that every acknowledged task ran and that only a task
 * running at the kill ran twice.
 */
export async function checkKillAndRestart(
  env: Record<string, string> & { readonly TOLLGATE_FIXTURE_LOG: string },
  users: readonly string[],
): Promise<void> {
  const log = env.TOLLGATE_FIXTURE_LOG;
  const first = await startServeProcess(env);
  const client = createTollgateClient({ baseUrl: `http://127.0.0.1:${first.port}` });
  const payload = new TextEncoder().encode(String(RUN_MS));
  const acknowledged: string[] = [];
  for (let i = 0; i < 12; i++) {
    acknowledged.push((await client.submit({ userId: users[i % users.length]!, kind: "slow", payload })).taskId);
  }
  await pollUntil("some tasks to start", async () => (await readFixtureLog(log)).length >= 4, { timeoutMs: 15_000 });
  const killAt = Date.now();
  first.child.kill("SIGKILL");
  await first.exited;
  const killedAt = Date.now();

  const second = await startServeProcess(env);
  try {
    await waitUntilAllRan(log, acknowledged, 30_000);
    await checkRepeatsOnlyAcrossKill(log, killAt, killedAt, RUN_MS);
  } finally {
    second.child.kill("SIGTERM");
    assert.equal(await second.exited, 0);
  }
}
