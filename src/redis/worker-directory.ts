import type { Clock } from "../core/clock.js";
import type { WorkerView } from "../core/remote-workers.js";
import type { ListedWorker, WorkerDirectory } from "../core/worker-directory.js";
import type { RedisClient } from "./connection.js";
import { storeCall } from "./errors.js";

/** A server's entry not rewritten for this long is of a process that died. */
const STALE_AFTER_MS = 15_000;
/** The hash ends this long after its last write (no process has workers). */
const KEEP_MS = 30_000;

interface Entry {
  readonly at: number;
  readonly workers: readonly WorkerView[];
}

/** The workers directory in one hash (keys.ts `workers`), one field per server process. */
export class RedisWorkerDirectory implements WorkerDirectory {
  constructor(
    private readonly redis: RedisClient,
    private readonly key: string,
    private readonly clock: Clock,
  ) {}

  async publish(server: string, workers: readonly WorkerView[]): Promise<void> {
    if (workers.length === 0) {
      await storeCall(() => this.redis.hdel(this.key, server));
      return;
    }
    const entry: Entry = { at: this.clock.now(), workers };
    await storeCall(() =>
      Promise.all([this.redis.hset(this.key, server, JSON.stringify(entry)), this.redis.pexpire(this.key, KEEP_MS)]),
    );
  }

  async list(): Promise<ListedWorker[]> {
    const fields = await storeCall(() => this.redis.hgetall(this.key));
    const now = this.clock.now();
    const listed: ListedWorker[] = [];
    const stale: string[] = [];
    for (const [server, text] of Object.entries(fields)) {
      const entry = parseEntry(text);
      if (!entry || now - entry.at > STALE_AFTER_MS) {
        stale.push(server);
        continue;
      }
      for (const worker of entry.workers) listed.push({ ...worker, server });
    }
    if (stale.length > 0) await storeCall(() => this.redis.hdel(this.key, ...stale));
    return listed.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }
}

function parseEntry(text: string): Entry | undefined {
  try {
    const entry = JSON.parse(text) as Entry;
    return typeof entry.at === "number" && Array.isArray(entry.workers) ? entry : undefined;
  } catch {
    return undefined;
  }
}
