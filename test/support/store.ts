import type { RedisClient } from "../../src/redis/connection.js";
import { createKeys } from "../../src/redis/keys.js";
import type { RatePolicy } from "../../src/core/rate-policy.js";

const keys = createKeys();

/**
 * What a Submit for one user can store in Redis: every task record (any
 * user's), every key that names the user (queue, idempotency keys, windows),
 * the user's queue and place in the due-users schedule, and the count of each
 * of the user's rate windows. Two snapshots around a refused or duplicate
 * call must be equal. (Shared bookkeeping that running tasks change on their
 * own, such as leases, is left out: a task started earlier may finish between
 * the snapshots.)
 */
export interface StoreSnapshot {
  readonly taskKeys: string[];
  readonly userKeys: string[];
  readonly queue: string[];
  readonly dueAt: string | null;
  readonly windows: Record<string, number>;
}

export async function snapshot(redis: RedisClient, userId: string, policy: RatePolicy): Promise<StoreSnapshot> {
  const all = (await redis.keys("*")).sort();
  const windows: Record<string, number> = {};
  for (const window of policy) {
    const key = `${keys.forUser(userId).windowPrefix(window.durationMs)}:${userId}`;
    windows[key] = Number((await redis.get(key)) ?? "0");
  }
  return {
    taskKeys: all.filter((key) => keys.all.some((partition) => key.startsWith(partition.task("")))),
    userKeys: all.filter((key) => key.endsWith(`:${userId}`) || key.includes(`:${userId}:`)),
    queue: await redis.lrange(keys.forUser(userId).queue(userId), 0, -1),
    dueAt: await redis.zscore(keys.forUser(userId).dueUsers, userId),
    windows,
  };
}

/** The count of one of a user's windows (0 when no window is open). */
export async function windowCount(redis: RedisClient, userId: string, durationMs: number): Promise<number> {
  return Number((await redis.get(`${keys.forUser(userId).windowPrefix(durationMs)}:${userId}`)) ?? "0");
}

export { keys };
