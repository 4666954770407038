import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Redis } from "ioredis";

export type RedisArg = string | number | Buffer;

/**
 * One Lua script from src/lua, run with EVALSHA and loaded on NOSCRIPT (after
 * a Redis restart or failover the script cache is empty). File names follow
 * `<name>-<numKeys>.lua`, or `<name>-n.lua` when the caller passes a variable
 * number of keys; each file starts with a header giving its KEYS, ARGV and
 * reply.
 */
export class LuaScript {
  readonly name: string;
  readonly numberOfKeys: number | "variable";
  private readonly source: string;
  private readonly sha: string;

  constructor(fileName: string) {
    const match = /^(.+)-(\d+|n)\.lua$/.exec(fileName);
    if (!match) throw new Error(`Lua script ${fileName} is not named <name>-<numKeys>.lua`);
    this.name = match[1]!;
    this.numberOfKeys = match[2] === "n" ? "variable" : Number(match[2]);
    this.source = readFileSync(new URL(`./lua/${fileName}`, import.meta.url), "utf8");
    this.sha = createHash("sha1").update(this.source).digest("hex");
  }

  /** Runs the script; bulk replies come back as strings. */
  async run(redis: Redis, keys: readonly string[], args: readonly RedisArg[]): Promise<unknown> {
    return this.call(keys, args, (...all) => redis.evalsha(this.sha, keys.length, ...all), (...all) =>
      redis.eval(this.source, keys.length, ...all),
    );
  }

  /** Runs the script; bulk replies come back as Buffers (for binary payloads). */
  async runBuffer(redis: Redis, keys: readonly string[], args: readonly RedisArg[]): Promise<unknown> {
    return this.call(keys, args, (...all) => redis.callBuffer("evalsha", this.sha, keys.length, ...all), (...all) =>
      redis.callBuffer("eval", this.source, keys.length, ...all),
    );
  }

  private async call(
    keys: readonly string[],
    args: readonly RedisArg[],
    bySha: (...all: RedisArg[]) => Promise<unknown>,
    bySource: (...all: RedisArg[]) => Promise<unknown>,
  ): Promise<unknown> {
    if (this.numberOfKeys !== "variable" && keys.length !== this.numberOfKeys) {
      throw new Error(`script ${this.name} takes ${this.numberOfKeys} keys, got ${keys.length}`);
    }
    try {
      return await bySha(...keys, ...args);
    } catch (error) {
      if (error instanceof Error && error.message.startsWith("NOSCRIPT")) return await bySource(...keys, ...args);
      throw error;
    }
  }
}
