import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { MAX_PRIORITY } from "../core/validation.js";
import { TASK_FIELD, TASK_STATE } from "./keys.js";
import { ADMIT, CANCEL, FINISH, RELEASE } from "./reply-codes.js";
import { storeCall, toStoreError } from "./errors.js";
import type { RedisClient } from "./connection.js";

export type RedisArg = string | number | Buffer;

/**
 * ioredis' Buffer variants of EVALSHA and EVAL: every command has one at run
 * time, but these two are missing from its type declarations. Used instead of
 * callBuffer("evalsha", …), which sends the SHA as the command when the
 * client auto-pipelines (ioredis issue 1923; connection.ts turns
 * auto-pipelining on).
 */
export interface BufferScripting {
  evalshaBuffer(sha: string, numberOfKeys: number, ...args: RedisArg[]): Promise<unknown>;
  evalBuffer(source: string, numberOfKeys: number, ...args: RedisArg[]): Promise<unknown>;
}

/** `WAIT numreplicas timeout` after a script: how many replicas must have its writes, and how long to wait. */
export interface ReplicaWait {
  readonly replicas: number;
  readonly timeoutMs: number;
}

const LUA_DIR = new URL("./lua/", import.meta.url);
/** `--- @include "name"`: replaced by lua/includes/<name>.lua (BullMQ's convention). */
const INCLUDE = /^--- @include "([a-z0-9-]+)"[ \t]*$/gm;

/**
 * Lua locals, one per constant: `local <PREFIX>_<KEY> = <value>`.
 * `prefixes` maps a Lua prefix to a TypeScript object of constants.
 */
function luaConstants(prefixes: Readonly<Record<string, Readonly<Record<string, string | number>>>>): string {
  const lines: string[] = [];
  for (const [prefix, constants] of Object.entries(prefixes)) {
    for (const [key, value] of Object.entries(constants)) {
      const name = `${prefix}_${key}`;
      if (!/^[A-Z][A-Z0-9_]*$/.test(name)) throw new Error(`Lua constant ${name} is not UPPER_SNAKE_CASE`);
      lines.push(`local ${name} = ${typeof value === "number" ? String(value) : JSON.stringify(value)}`);
    }
  }
  return lines.join("\n");
}

/**
 * Includes generated from TypeScript constants, so a reply code or a field
 * name is written once: `--- @include "reply-codes"` defines `ADMIT_STARTED`
 * and the rest of reply-codes.ts; `--- @include "task-fields"` defines
 * `FIELD_STATE`, `STATE_RUNNING` and the rest of keys.ts' task constants,
 * and `PRIORITY_MAX` (core/validation.ts).
 * Imported statically, so a script's source (and SHA) never depends on which
 * modules were loaded first.
 */
export const GENERATED_INCLUDES: ReadonlyMap<string, string> = new Map([
  ["reply-codes", `-- reply codes, from src/redis/reply-codes.ts\n${luaConstants({ ADMIT, FINISH, RELEASE, CANCEL })}`],
  [
    "task-fields",
    `-- task record fields and states, from src/redis/keys.ts, and the highest priority\n${luaConstants({
      FIELD: TASK_FIELD,
      STATE: TASK_STATE,
      PRIORITY: { MAX: MAX_PRIORITY },
    })}`,
  ],
]);

/**
 * The script's source with every include expanded in place, each include at
 * most once (the first mention wins), and includes of includes expanded too.
 */
export function expandIncludes(source: string, seen: Set<string> = new Set()): string {
  return source.replace(INCLUDE, (_line, name: string) => {
    if (seen.has(name)) return `-- (include "${name}" already expanded above)`;
    seen.add(name);
    const generated = GENERATED_INCLUDES.get(name);
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
 * `--- @include "<name>"` (some generated from TypeScript constants, see
 * GENERATED_INCLUDES); the source is expanded on first use.
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
  async run(redis: RedisClient, keys: readonly string[], args: readonly RedisArg[]): Promise<unknown> {
    return this.call(
      keys,
      args,
      (...all) => redis.evalsha(this.sha, keys.length, ...all),
      (...all) => redis.eval(this.source, keys.length, ...all),
    );
  }

  /** Runs the script; bulk replies come back as Buffers (for binary payloads). */
  async runBuffer(redis: RedisClient, keys: readonly string[], args: readonly RedisArg[]): Promise<unknown> {
    const scripting = redis as unknown as BufferScripting;
    return this.call(
      keys,
      args,
      (...all) => scripting.evalshaBuffer(this.sha, keys.length, ...all),
      (...all) => scripting.evalBuffer(this.source, keys.length, ...all),
    );
  }

  /**
   * Runs the script, then `WAIT` in the same pipeline: on the same connection,
   * so WAIT counts this script's writes, and on a Cluster to the same node
   * (a pipeline goes to its keyed commands' slot). Answers the reply (bulk
   * replies as Buffers with `buffers`) and how many replicas confirmed.
   */
  async runAndWait(
    redis: RedisClient,
    keys: readonly string[],
    args: readonly RedisArg[],
    wait: ReplicaWait,
    buffers = false,
  ): Promise<{ readonly reply: unknown; readonly replicas: number }> {
    const pipelined = async (command: "evalsha" | "eval", script: string): Promise<[unknown, number]> => {
      const pipeline = redis.pipeline();
      const all = [script, keys.length, ...keys, ...args];
      if (buffers) pipeline.callBuffer(command, ...all);
      else pipeline.call(command, ...all);
      pipeline.wait(wait.replicas, wait.timeoutMs);
      const results = await pipeline.exec();
      const [scriptError, reply] = results?.[0] ?? [new Error("the pipeline answered nothing"), undefined];
      if (scriptError) throw scriptError;
      const [waitError, replicas] = results?.[1] ?? [new Error("WAIT answered nothing"), 0];
      // The script ran; WAIT failing (a timeout, a dropped connection) means
      // nothing was confirmed, not that nothing was written.
      return [reply, waitError ? 0 : Number(replicas)];
    };
    const [reply, replicas] = await this.call(
      keys,
      args,
      () => pipelined("evalsha", this.sha),
      () => pipelined("eval", this.source),
    );
    return { reply, replicas };
  }

  private async call<T>(
    keys: readonly string[],
    args: readonly RedisArg[],
    bySha: (...all: RedisArg[]) => Promise<T>,
    bySource: (...all: RedisArg[]) => Promise<T>,
  ): Promise<T> {
    if (this.numberOfKeys !== "variable" && keys.length !== this.numberOfKeys) {
      throw new Error(`script ${this.name} takes ${this.numberOfKeys} keys, got ${keys.length}`);
    }
    try {
      return await bySha(...keys, ...args);
    } catch (error) {
      // An unreachable or full Redis fails as the core's StoreUnavailable.
      if (error instanceof Error && error.message.startsWith("NOSCRIPT"))
        return await storeCall(() => bySource(...keys, ...args));
      throw toStoreError(error);
    }
  }
}
