// What the Redis Cluster and Sentinel harnesses share: a short-lived client to
// one node, its INFO sections, and the temp directories to remove at exit.
import { rmSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { Redis } from "ioredis";

// Data directories of this test process's topologies, removed when it exits
// (stop() removes them too; this covers a test process that fails first).
const directories = new Set<string>();
process.once("exit", () => {
  for (const dir of directories) rmSync(dir, { recursive: true, force: true });
});

export function removeAtExit(dir: string): void {
  directories.add(dir);
}

export function forget(dir: string): void {
  directories.delete(dir);
}

/**
 * Runs one command on the node at 127.0.0.1:`port` over a connection of its
 * own, closed after: no reconnecting client is left behind pointing at a node
 * a test may kill. Rejects at once when nothing listens there.
 */
export async function nodeCommand(port: number, command: string, ...args: (string | number)[]): Promise<unknown> {
  const client = new Redis({
    host: "127.0.0.1",
    port,
    lazyConnect: true,
    connectTimeout: 1_000,
    commandTimeout: 2_000,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  client.on("error", () => {});
  try {
    await client.connect();
    return await client.call(command, ...args);
  } finally {
    client.disconnect();
  }
}

/** INFO `section` of the node at `port` as a map of its fields. */
async function nodeInfo(port: number, section: string): Promise<Map<string, string>> {
  const text = String(await nodeCommand(port, "INFO", section));
  const fields = new Map<string, string>();
  for (const line of text.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon > 0 && !line.startsWith("#")) fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return fields;
}

/** Whether the replica at `port` is linked to its master and done with the initial sync. */
export async function replicaSynced(port: number): Promise<boolean> {
  const info = await nodeInfo(port, "replication");
  return (
    info.get("role") === "slave" &&
    info.get("master_link_status") === "up" &&
    info.get("master_sync_in_progress") === "0"
  );
}

/** How many replicas the master at `port` has online. */
export async function onlineReplicas(port: number): Promise<number> {
  const info = await nodeInfo(port, "replication");
  return [...info.entries()].filter(([key, value]) => /^slave\d+$/.test(key) && value.includes("state=online")).length;
}

/**
 * pids of redis-server processes (data nodes and sentinels alike) listening
 * on any of `ports`, from their process titles ("redis-server 127.0.0.1:6379
 * [cluster]"): what a stop() must leave none of.
 */
export async function redisProcessesOn(ports: readonly number[]): Promise<number[]> {
  const wanted = new Set(ports.map((port) => `127.0.0.1:${port}`));
  const found: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const title = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    if (!title.startsWith("redis-server")) continue;
    const address = /\b127\.0\.0\.1:(\d+)\b/.exec(title)?.[0];
    if (address && wanted.has(address)) found.push(Number(entry));
  }
  return found;
}
