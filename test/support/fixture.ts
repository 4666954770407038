import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import { TestRedis } from "./redis.js";

export interface PrivateRedis {
  readonly redis: TestRedis;
  /** A scratch directory for the file's logs and data. */
  readonly dir: string;
}

/**
 * A private Redis and a scratch directory for one test file: started before
 * its tests, removed after them. Read the fields inside tests, not at load.
 */
export function usePrivateRedis(name: string): PrivateRedis {
  const context: { redis?: TestRedis; dir?: string } = {};
  before(async () => {
    context.redis = await TestRedis.start();
    context.dir = await mkdtemp(join(tmpdir(), `tollgate-${name}-`));
  });
  after(async () => {
    await context.redis?.stop();
    if (context.dir) await rm(context.dir, { recursive: true, force: true });
  });
  return {
    get redis() {
      return context.redis!;
    },
    get dir() {
      return context.dir!;
    },
  };
}
