import { randomBytes } from "node:crypto";

// 128 random bits, base64url: unguessable, and safe inside a Redis key.
const TASK_ID_PATTERN = /^[A-Za-z0-9_-]{22}$/;

export function newTaskId(): string {
  return randomBytes(16).toString("base64url");
}

export function isTaskId(value: string): boolean {
  return TASK_ID_PATTERN.test(value);
}
