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

  async run(redis: Redis, keys: readonly string[], args: readonly RedisArg[]): Promise<unknown> {
    if (this.numberOfKeys !== "variable" && keys.length !== this.numberOfKeys) {
      throw new Error(`script ${this.name} takes ${this.numberOfKeys} keys, got ${keys.length}`);
    }
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (error instanceof Error && error.message.startsWith("NOSCRIPT")) {
        return await redis.eval(this.source, keys.length, ...keys, ...args);
      }
      throw error;
    }
  }
}
