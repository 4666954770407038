import { randomFillSync } from "node:crypto";

// A task id is `<partition>.<22 characters of base64url>`: 128 random bits,
// unguessable, safe inside a Redis key, holding no ":" (a lease member puts
// one after it), and naming the partition whose keys hold the task, so a
// lookup by id alone knows where to read.
const TASK_ID_PATTERN = /^\d{1,4}\.[A-Za-z0-9_-]{22}$/;
const ID_BYTES = 16;

// Random bytes drawn 256 ids at a time: one call into the CSPRNG per 256
// Submits instead of one each (it showed in Submit's CPU profile).
const pool = Buffer.alloc(ID_BYTES * 256);
let offset = pool.length;

/** 22 characters of base64url, unguessable. */
export function randomId(): string {
  if (offset === pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const id = pool.toString("base64url", offset, offset + ID_BYTES);
  offset += ID_BYTES;
  return id;
}

/** A new task id in `partition`. */
export function newTaskId(partition: number): string {
  return `${partition}.${randomId()}`;
}

export function isTaskId(value: string): boolean {
  return TASK_ID_PATTERN.test(value);
}
