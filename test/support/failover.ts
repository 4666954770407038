// What the failover e2e tests share: whether Tollgate accepts a topology's URL
// yet, the settings for `tollgate serve` on it, a steady Submit load that
// records every answer, and what those answers say about an outage.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { parseConfig } from "../../src/config.js";
import { createTollgateClient, type TollgateClient } from "../../src/client/client.js";
import { pollUntil } from "./expect.js";
import { waitUntilAllRan } from "./task-log.js";
import type { ServeProcess } from "./serve-process.js";

const FIXTURE_HANDLERS = fileURLToPath(new URL("../fixtures/handlers.ts", import.meta.url));

/**
 * Why `tollgate serve` cannot run on `url` with TOLLGATE_REPLICA_ACKS=1 yet,
 * or undefined once it can: src/config.ts must accept the URL's scheme (it
 * throws ConfigError for redis+cluster:// and redis+sentinel:// until that
 * support lands) and know TOLLGATE_REPLICA_ACKS (unknown variables are
 * ignored, so a config without it would silently not WAIT).
 */
export function unsupportedRedisUrl(url: string): string | undefined {
  const scheme = url.slice(0, url.indexOf("://") + 3);
  let config: object;
  try {
    config = parseConfig({ TOLLGATE_REDIS_URL: url, TOLLGATE_REPLICA_ACKS: "1" });
  } catch (error) {
    return `Tollgate does not accept ${scheme} URLs yet (src/config.ts: ${(error as Error).message})`;
  }
  if (Reflect.get(config, "replicaAcks") !== 1) {
    return "Tollgate has no TOLLGATE_REPLICA_ACKS yet (src/config.ts has no replicaAcks setting)";
  }
  return undefined;
}

/**
 * Settings for `tollgate serve` on `redisUrl` with TOLLGATE_REPLICA_ACKS=1:
 * loopback, a free port, 2 workers, the fixture handlers writing every start
 * to `<dir>/<name>.log`; `extra` over these.
 */
export function serveEnv(
  redisUrl: string,
  dir: string,
  name: string,
  extra: Record<string, string> = {},
): Record<string, string> & { readonly TOLLGATE_FIXTURE_LOG: string } {
  return {
    TOLLGATE_REDIS_URL: redisUrl,
    TOLLGATE_REPLICA_ACKS: "1",
    TOLLGATE_HOST: "127.0.0.1",
    TOLLGATE_PORT: "0",
    TOLLGATE_WORKERS: "2",
    TOLLGATE_DATA_DIR: join(dir, name),
    TOLLGATE_HANDLER: FIXTURE_HANDLERS,
    TOLLGATE_FIXTURE_LOG: join(dir, `${name}.log`),
    ...extra,
  };
}

/** A client with a channel of its own, so calls spread over the cluster's workers. */
export function clientFor(server: ServeProcess): TollgateClient {
  return createTollgateClient({ baseUrl: `http://127.0.0.1:${server.port}` });
}

/** The server's last `count` log lines at level warn or above, to say why a call failed. */
function serverWarnings(server: ServeProcess, count = 8): string {
  const lines = server
    .output()
    .split("\n")
    .filter((line) => /"level":(4|5|6)0\b/.test(line));
  return lines
    .slice(-count)
    .map((line) => (line.length > 400 ? `${line.slice(0, 400)}…` : line))
    .join("\n");
}

/** SIGTERM, then the exit code. */
export async function stopServe(server: ServeProcess): Promise<number | string> {
  server.child.kill("SIGTERM");
  return server.exited;
}

interface Answer {
  readonly sentAt: number;
  readonly answeredAt: number;
  /** "OK" or the status code's name. */
  readonly code: string;
  readonly message: string;
}

interface OutageReport {
  /** Answers from `since` on that were UNAVAILABLE: what the outage cost. */
  readonly unavailable: number;
  /** Answers before `since` that were not OK: none are allowed. */
  readonly failuresBefore: number;
  /** Answers of the whole run neither OK nor UNAVAILABLE, "CODE: message (N×)": none are allowed. */
  readonly unexpected: string[];
  /** ms from `since` to the first and the last answer that was not OK (undefined: none). */
  readonly firstFailureMs: number | undefined;
  readonly lastFailureMs: number | undefined;
  /** ms from `since` to the first OK answer sent after the last failure (undefined: not yet). */
  readonly recoveredMs: number | undefined;
}

/**
 * Submits without pause from `clients` (one loop each, users round robin,
 * `pauseMs` between calls, a deadline of `deadlineMs` per call) until
 * stop(), and records every answer. Acknowledged tasks (OK answers) must
 * all run; every other answer must be UNAVAILABLE.
 */
class SubmitLoad {
  readonly acknowledged: string[] = [];
  private readonly answers: Answer[] = [];
  private running = true;
  private readonly loops: Promise<void>[];

  constructor(
    clients: readonly TollgateClient[],
    users: readonly string[],
    { pauseMs = 20, deadlineMs = 10_000 }: { pauseMs?: number; deadlineMs?: number } = {},
  ) {
    this.loops = clients.map(async (client, c) => {
      for (let i = 0; this.running; i++) {
        const sentAt = Date.now();
        try {
          const answer = await client.submit({ userId: users[(c + i) % users.length]! }, { timeoutMs: deadlineMs });
          this.acknowledged.push(answer.taskId);
          this.answers.push({ sentAt, answeredAt: Date.now(), code: "OK", message: "" });
        } catch (error) {
          const status = ConnectError.from(error);
          this.answers.push({ sentAt, answeredAt: Date.now(), code: Code[status.code], message: status.rawMessage });
        }
        await new Promise((resolve) => setTimeout(resolve, pauseMs));
      }
    });
  }

  /** How many answers were OK in a row, counting back from the latest, among those sent at `sentAfter` or later. */
  okInARow(sentAfter: number): number {
    let count = 0;
    for (let i = this.answers.length - 1; i >= 0; i--) {
      const answer = this.answers[i]!;
      if (answer.code !== "OK" || answer.sentAt < sentAfter) break;
      count++;
    }
    return count;
  }

  /** Stops submitting and waits for the calls in flight. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  /** What the answers since `since` (epoch ms, e.g. the SIGKILL) say about the outage. */
  report(since: number): OutageReport {
    const after = this.answers.filter((answer) => answer.answeredAt >= since);
    const failures = after.filter((answer) => answer.code !== "OK");
    const last = failures.at(-1);
    const recovery = after.find((answer) => answer.code === "OK" && (!last || answer.sentAt >= last.answeredAt));
    return {
      unavailable: failures.filter((answer) => answer.code === Code[Code.Unavailable]).length,
      failuresBefore: this.answers.filter((answer) => answer.answeredAt < since && answer.code !== "OK").length,
      unexpected: counted(
        this.answers
          .filter((answer) => answer.code !== "OK" && answer.code !== Code[Code.Unavailable])
          .map((answer) => `${answer.code}: ${answer.message}`),
      ),
      firstFailureMs: failures[0] && failures[0].answeredAt - since,
      lastFailureMs: last && last.answeredAt - since,
      recoveredMs: recovery && recovery.answeredAt - since,
    };
  }
}

/** Each distinct text once, with how often it came. */
function counted(texts: readonly string[]): string[] {
  const counts = new Map<string, number>();
  for (const text of texts) counts.set(text, (counts.get(text) ?? 0) + 1);
  return [...counts].map(([text, count]) => `${text} (${count}×)`);
}

export interface FailoverRun {
  readonly load: SubmitLoad;
  readonly report: OutageReport;
  /** ms from the kill until `failover` resolved (the topology's own view). */
  readonly failoverMs: number;
}

/**
 * Runs a Submit load on `clients`, and once 20 tasks are acknowledged calls
 * `failover` (kill a master, wait for the topology to replace it); then waits
 * until 20 Submits in a row sent after that were OK, and stops the load.
 */
export async function submitThroughFailover(
  clients: readonly TollgateClient[],
  users: readonly string[],
  failover: () => Promise<void>,
  { recoveryTimeoutMs = 40_000 }: { recoveryTimeoutMs?: number } = {},
): Promise<FailoverRun> {
  const load = new SubmitLoad(clients, users, { pauseMs: 50 });
  try {
    await pollUntil("20 acknowledged Submits before the kill", () => load.acknowledged.length >= 20, {
      timeoutMs: 20_000,
    });
    const killAt = Date.now();
    await failover();
    const failoverAt = Date.now();
    try {
      await pollUntil("20 OK Submits in a row after the failover", () => load.okInARow(failoverAt) >= 20, {
        timeoutMs: recoveryTimeoutMs,
      });
    } catch (error) {
      const report = load.report(killAt);
      throw new Error(`${(error as Error).message}; answers since the kill: ${JSON.stringify(report)}`);
    }
    await load.stop();
    return { load, report: load.report(killAt), failoverMs: failoverAt - killAt };
  } finally {
    await load.stop();
  }
}

/**
 * Prints what Submit saw during the failover, then checks what the failover
 * tests promise: every acknowledged task ran (first, as it matters most);
 * only OK or UNAVAILABLE answers; all OK before the kill; OK again within
 * 20 s (a few seconds when idle, so 20 s still fails a Tollgate that needs a
 * restart or waits out a long reconnect backoff).
 */
export async function checkFailover(
  topology: string,
  run: FailoverRun,
  server: ServeProcess,
  taskLog: string,
): Promise<void> {
  const { report } = run;
  console.log(
    `${topology} failover as Submit saw it: ${report.unavailable} UNAVAILABLE answers and others: ` +
      `[${report.unexpected.join("; ")}], the first ${report.firstFailureMs} ms and the last ${report.lastFailureMs} ms after the ` +
      `SIGKILL (failing for ${(report.lastFailureMs ?? 0) - (report.firstFailureMs ?? 0)} ms); OK again ` +
      `${report.recoveredMs} ms after it; ${run.load.acknowledged.length} tasks acknowledged`,
  );
  await waitUntilAllRan(taskLog, run.load.acknowledged, 60_000);
  assert.deepEqual(
    report.unexpected,
    [],
    `Submit answers only OK or UNAVAILABLE; the server's last warnings:\n${serverWarnings(server)}`,
  );
  assert.equal(report.failuresBefore, 0, "every Submit before the kill was OK");
  assert.ok(
    report.recoveredMs !== undefined && report.recoveredMs <= 20_000,
    `OK again after ${report.recoveredMs} ms`,
  );
}
