import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Redis } from "ioredis";
import { storeCall, toStoreError } from "./errors.js";

export type RedisArg = string | number | Buffer;

const LUA_DIR = new URL("./lua/", import.meta.url);
/** `--- @include "name"`: replaced by lua/includes/<name>.lua (BullMQ's convention). */
const INCLUDE = /^--- @include "([a-z0-9-]+)"[ \t]*$/gm;

/** Named constants shared by TypeScript and Lua; each include of this name defines them as Lua locals. */
const generatedIncludes = new Map<string, string>();

/**
 * Makes `--- @include "<name>"` define each constant as a Lua local, so a
 * reply code or a field name is written once, in TypeScript.
 */
export function defineLuaConstants(name: string, constants: Readonly<Record<string, string | number>>): void {
  const lines = Object.entries(constants).map(([key, value]) => {
    if (!/^[A-Z][A-Z0-9_]*$/.test(key)) throw new Error(`Lua constant ${key} is not UPPER_SNAKE_CASE`);
    return `local ${key} = ${typeof value === "number" ? String(value) : JSON.stringify(value)}`;
  });
  generatedIncludes.set(name, `-- constants from TypeScript (${name})\n${lines.join("\n")}\n`);
}

/**
 * The script's source with every include expanded in place, each include at
 * most once (the first mention wins), and includes of includes expanded too.
 */
export function expandIncludes(source: string, seen: Set<string> = new Set()): string {
  return source.replace(INCLUDE, (_line, name: string) => {
    if (seen.has(name)) return `-- (include "${name}" already expanded above)`;
    seen.add(name);
    const generated = generatedIncludes.get(name);
    if (generated !== undefined) return generated;
    const text = readFileSync(new URL(`includes/${name}.lua`, LUA_DIR), "utf8");
    return expandIncludes(text, seen).trimEnd();
  });
}

/**
 * One Lua script from src/lua, run with EVALSHA and loaded on NOSCRIPT (after
 * a Redis restart or failover the script cache is empty). File names follow
 * `<name>-<numKeys>.lua`, or `<name>-n.lua` when the caller passes a variable
 * number of keys; each file starts with a header giving its KEYS, ARGV and
 * reply. Shared rules live in lua/includes and are pulled in with
 * `--- @include "<name>"`; the source is expanded on first use, so constants
 * defined with defineLuaConstants at module load are in place by then.
 */
export class LuaScript {
  readonly name: string;
  readonly numberOfKeys: number | "variable";
  private expanded: { readonly source: string; readonly sha: string } | undefined;

  constructor(readonly fileName: string) {
    const match = /^(.+)-(\d+|n)\.lua$/.exec(fileName);
    if (!match) throw new Error(`Lua script ${fileName} is not named <name>-<numKeys>.lua`);
    this.name = match[1]!;
    this.numberOfKeys = match[2] === "n" ? "variable" : Number(match[2]);
  }

  /** The source Redis runs: the file with its includes expanded. */
  get source(): string {
    return this.load().source;
  }

  /** SHA1 of the expanded source, as Redis names the script. */
  get sha(): string {
    return this.load().sha;
  }

  private load(): { readonly source: string; readonly sha: string } {
    if (!this.expanded) {
      const source = expandIncludes(readFileSync(new URL(this.fileName, LUA_DIR), "utf8"));
      this.expanded = { source, sha: createHash("sha1").update(source).digest("hex") };
    }
    return this.expanded;
  }

  /** Runs the script; bulk replies come back as strings. */
  async run(redis: Redis, keys: readonly string[], args: readonly RedisArg[]): Promise<unknown> {
    return this.call(
      keys,
      args,
      (...all) => redis.evalsha(this.sha, keys.length, ...all),
      (...all) => redis.eval(this.source, keys.length, ...all),
    );
  }

  /** Runs the script; bulk replies come back as Buffers (for binary payloads). */
  async runBuffer(redis: Redis, keys: readonly string[], args: readonly RedisArg[]): Promise<unknown> {
    return this.call(
      keys,
      args,
      (...all) => redis.callBuffer("evalsha", this.sha, keys.length, ...all),
      (...all) => redis.callBuffer("eval", this.source, keys.length, ...all),
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
      // An unreachable or full Redis fails as the core's StoreUnavailable.
      if (error instanceof Error && error.message.startsWith("NOSCRIPT")) return await storeCall(() => bySource(...keys, ...args));
      throw toStoreError(error);
    }
  }
}
