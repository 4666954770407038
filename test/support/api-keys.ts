// The API keys the integration tests run with: two users', an admin's and a worker's.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";

export const ALICE_KEY = "alice-key-0123456789abcdef";
export const BOB_KEY = "bob-key-0123456789abcdef01";
export const ADMIN_KEY = "admin-key-0123456789abcdef";
export const WORKER_KEY = "worker-key-0123456789abcdef";

/**
 * Writes `<dir>/keys`, a TOLLGATE_AUTH_KEYS file: ALICE_KEY for user alice,
 * BOB_KEY for bob, ADMIN_KEY an admin's, WORKER_KEY a worker's. Returns its path.
 */
export async function writeKeyFile(dir: string): Promise<string> {
  const path = join(dir, "keys");
  await writeFile(path, `${ALICE_KEY} user:alice\n${BOB_KEY} user:bob\n${ADMIN_KEY} admin\n${WORKER_KEY} worker\n`);
  return path;
}
