// The Lua scripts' includes (src/redis/lua/includes, BullMQ's `--- @include`):
// every include resolves and is expanded once; each shared rule (the clock,
// the window rule, dead-lettering, storing a task) is written in its include
// and nowhere else; the reply codes and task fields the scripts use are the
// TypeScript constants. Reads the script files; no Redis.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { TASK_FIELD, TASK_STATE } from "../../src/redis/keys.js";
import { GENERATED_INCLUDES, LuaScript } from "../../src/redis/lua-script.js";
import { ADMIT, CANCEL, FINISH, RELEASE } from "../../src/redis/reply-codes.js";

const LUA_DIR = new URL("../../src/redis/lua/", import.meta.url);
const INCLUDES_DIR = new URL("includes/", LUA_DIR);
const INCLUDE = /^--- @include "([^"]*)"/gm;

const scriptFiles = readdirSync(LUA_DIR)
  .filter((file) => file.endsWith(".lua"))
  .sort();
const includeFiles = readdirSync(INCLUDES_DIR)
  .filter((file) => file.endsWith(".lua"))
  .sort();
const scripts = scriptFiles.map((file) => new LuaScript(file));

const read = (url: URL): string => readFileSync(url, "utf8");
const ownText = new Map<string, string>([
  ...scriptFiles.map((file) => [file, read(new URL(file, LUA_DIR))] as const),
  ...includeFiles.map((file) => [`includes/${file}`, read(new URL(file, INCLUDES_DIR))] as const),
]);

/**
 * Lua code without its comments (block and line) and generated constants'
 * definitions, so that rules named in prose or constants defined but unused
 * do not count.
 */
function code(lua: string): string {
  return lua
    .replace(/--\[\[[\s\S]*?\]\]/g, "")
    .replace(/--.*$/gm, "")
    .replace(/^local [A-Z][A-Z0-9_]* = .*$/gm, "");
}

function includesOf(lua: string): string[] {
  return [...lua.matchAll(INCLUDE)].map((match) => match[1]!);
}

function count(text: string, pattern: RegExp): number {
  return [...text.matchAll(new RegExp(pattern.source, "g"))].length;
}

/** The includes a script pulls in, directly or through another include. */
function includedBy(file: string): Set<string> {
  const seen = new Set<string>();
  const visit = (lua: string): void => {
    for (const name of includesOf(lua)) {
      if (seen.has(name)) continue;
      seen.add(name);
      if (!GENERATED_INCLUDES.has(name)) visit(ownText.get(`includes/${name}.lua`) ?? "");
    }
  };
  visit(ownText.get(file)!);
  return seen;
}

/**
 * Each shared rule, the include that holds it, and a pattern only that rule
 * writes. No other file may write the pattern, and a script's expanded source
 * holds it exactly as often as the include does.
 */
const RULES = [
  { rule: "now in ms from the server's clock", include: "time", pattern: /redis\.call\('TIME'\)/ },
  { rule: "a window's ms to live", include: "window", pattern: /'PTTL'/ },
  { rule: "using a window (SET ... EX, then INCRBY)", include: "window", pattern: /'INCRBY'/ },
  { rule: "the window's wait (PTTL + 1)", include: "window", pattern: /pttl[\w[\]]*\s*\+\s*1|'PTTL'.*\)\s*\+\s*1/i },
  { rule: "dead-lettering: trimming the list at its cap", include: "dead-letter", pattern: /'LREM', dead/ },
  { rule: "dead-lettering: the record's and the list's end", include: "dead-letter", pattern: /'EXPIRE', (task|dead)/ },
  { rule: "a user's stats: a new hash's generation", include: "user-stats", pattern: /'e', now/ },
  { rule: "a user's stats: kept while in use, else expiring", include: "user-stats", pattern: /'PERSIST', stats/ },
  { rule: "dead-lettering: the dead state", include: "dead-letter", pattern: /STATE_DEAD/ },
  { rule: "counting a failed attempt", include: "dead-letter", pattern: /'f', 1\)/ },
  { rule: "storing a new task record", include: "task-record", pattern: /FIELD_SUBMITTED, now/ },
  { rule: "does this attempt hold its lease", include: "lease", pattern: /FIELD_ATTEMPTS\)\s*[~=]=/ },
  { rule: "the heads hash and due set follow a queue's head", include: "heads", pattern: /'HDEL', heads/ },
  { rule: "a queue that was empty has a head again", include: "heads", pattern: /'HSET', heads, userId, taskId/ },
  { rule: "a task's place in its queue by priority", include: "priority", pattern: /'LINSERT'/ },
] as const;

/** Scripts whose KEYS or ARGV carry rate windows must go through the window include. */
const takesWindows = (file: string): boolean =>
  /rate-limiter-flexible (?:window )?counter|per window:/.test(ownText.get(file)!);

describe("Lua includes resolve", () => {
  test("every script is named <name>-<numKeys>.lua and has a KEYS/ARGV/Returns header", () => {
    assert.ok(scripts.length >= 8, `found ${scriptFiles.join(", ")}`);
    for (const file of scriptFiles) {
      const header = /^--\[\[([\s\S]*?)\]\]/.exec(ownText.get(file)!)?.[1] ?? "";
      assert.match(header, /KEYS\[1\]/, `${file} documents its KEYS`);
      assert.match(header, /\n\s*Returns\s/, `${file} documents its reply`);
      if (code(ownText.get(file)!).includes("ARGV[")) assert.match(header, /ARGV\[1\]/, `${file} documents its ARGV`);
    }
  });

  test("every --- @include names an include file or a generated include, and every include file is used", () => {
    const used = new Set<string>();
    for (const [file, lua] of ownText) {
      for (const name of includesOf(lua)) {
        used.add(name);
        const found = GENERATED_INCLUDES.has(name) || existsSync(new URL(`${name}.lua`, INCLUDES_DIR));
        assert.ok(found, `${file}: include "${name}" is neither includes/${name}.lua nor generated`);
      }
    }
    for (const file of includeFiles) assert.ok(used.has(file.replace(/\.lua$/, "")), `includes/${file} is used`);
    for (const name of GENERATED_INCLUDES.keys()) assert.ok(used.has(name), `generated include "${name}" is used`);
  });

  test("each script's expanded source holds every include once and no include line", () => {
    for (const script of scripts) {
      assert.doesNotMatch(script.source, /^--- @include/m, `${script.fileName}: every include expanded`);
      // Every function an include defines is defined once.
      const defined = [...script.source.matchAll(/^local function (\w+)/gm)].map((match) => match[1]!);
      assert.deepEqual(defined, [...new Set(defined)], `${script.fileName}: no function defined twice`);
      for (const name of includedBy(script.fileName)) {
        if (GENERATED_INCLUDES.has(name)) {
          const firstLine = GENERATED_INCLUDES.get(name)!.split("\n")[0]!;
          assert.equal(script.source.split(firstLine).length - 1, 1, `${script.fileName}: "${name}" expanded once`);
        } else {
          const header = /^--\[\[[\s\S]*?\]\]/.exec(ownText.get(`includes/${name}.lua`)!)![0];
          assert.equal(script.source.split(header).length - 1, 1, `${script.fileName}: "${name}" expanded once`);
        }
      }
    }
  });

  test("the SHA is the expanded source's, and the same whatever was loaded first", () => {
    for (const script of scripts) {
      const again = new LuaScript(script.fileName);
      assert.equal(again.sha, script.sha);
      assert.equal(again.source, script.source);
    }
  });
});

describe("Lua rules are written once", () => {
  for (const { rule, include, pattern } of RULES) {
    test(`${rule}: only in includes/${include}.lua`, () => {
      const owner = `includes/${include}.lua`;
      const inOwner = count(code(ownText.get(owner)!), pattern);
      assert.ok(inOwner > 0, `${owner} writes ${pattern}`);
      for (const [file, lua] of ownText) {
        if (file !== owner) assert.equal(count(code(lua), pattern), 0, `${file} writes ${pattern} itself`);
      }
      for (const script of scripts) {
        const expected = includedBy(script.fileName).has(include) ? inOwner : 0;
        assert.equal(
          count(code(script.source), pattern),
          expected,
          `${script.fileName}: ${pattern} only from "${include}"`,
        );
      }
    });
  }

  test("every script that takes rate windows reads and uses them through the window include", () => {
    const windowed = scriptFiles.filter(takesWindows);
    assert.deepEqual(windowed, [
      "admit-n.lua",
      "admit-outcome-n.lua",
      "claim-n.lua",
      "requeue-dead-letters-n.lua",
      "resume-n.lua",
      "snapshot-n.lua",
    ]);
    for (const file of windowed) {
      assert.ok(includedBy(file).has("window"), `${file} includes "window"`);
      assert.match(
        code(ownText.get(file)!),
        /\b(windowRead|windowsWait|appendWindows|policyWait)\(/,
        `${file} reads its windows with the include`,
      );
    }
  });

  test("every script that writes a dead letter or a new task does it through its include", () => {
    for (const file of scriptFiles) {
      const own = code(ownText.get(file)!);
      if (/\bdeadLetter\(/.test(own)) assert.ok(includedBy(file).has("dead-letter"), file);
      if (/\bstoreTask\(/.test(own)) assert.ok(includedBy(file).has("task-record"), file);
      if (/\bcurrentMs\(/.test(own)) assert.ok(includedBy(file).has("time"), file);
      // A user's counters change only through the include, and every script
      // that changes them settles their lifetime.
      assert.doesNotMatch(
        own,
        /'HINCRBY', (KEYS\[\d+\]|stats|user\.stats), '[rwn]'/,
        `${file} counts through statsAdd`,
      );
      if (/\bstatsAdd\(/.test(own)) assert.match(own, /\bstatsSettle\(/, `${file} settles what it counted`);
    }
    assert.match(code(ownText.get("claim-n.lua")!), /\bdeadLetter\(/);
    assert.match(code(ownText.get("finish-7.lua")!), /\bdeadLetter\(/);
    assert.match(code(ownText.get("admit-n.lua")!), /\bstoreTask\(/);
  });

  test("a task ends expired only through the expired include, and only claim ends one", () => {
    for (const file of scriptFiles) {
      const own = code(ownText.get(file)!);
      const ends = /\bendExpired\(/.test(own);
      if (ends) assert.ok(includedBy(file).has("expired"), `${file} includes "expired"`);
      assert.equal(ends, file === "claim-n.lua", `${file}: ${ends ? "ends" : "does not end"} a task expired`);
    }
    // claim checks a head's start_by and a delayed task's, both through pastStartBy.
    assert.equal(code(ownText.get("claim-n.lua")!).match(/\bpastStartBy\(/g)?.length, 2);
  });
});

describe("reply codes and task fields: Lua and TypeScript agree", () => {
  /** `local NAME = value` lines of an expanded source, by name. */
  function luaLocals(source: string): Map<string, string | number> {
    const locals = new Map<string, string | number>();
    for (const [, name, value] of source.matchAll(/^local ([A-Z][A-Z0-9_]*) = (.+)$/gm)) {
      locals.set(name!, value!.startsWith('"') ? (JSON.parse(value!) as string) : Number(value));
    }
    return locals;
  }

  const expected = new Map<string, string | number>();
  const groups = { ADMIT, FINISH, RELEASE, CANCEL, FIELD: TASK_FIELD, STATE: TASK_STATE };
  for (const [prefix, constants] of Object.entries(groups)) {
    for (const [key, value] of Object.entries(constants)) expected.set(`${prefix}_${key}`, value);
  }
  const CONSTANT = /\b(?:ADMIT|FINISH|RELEASE|CANCEL|FIELD|STATE)_[A-Z0-9_]+\b/g;

  test("each script's generated constants are the TypeScript values", () => {
    for (const script of scripts) {
      const locals = luaLocals(script.source);
      for (const [name, value] of locals) {
        if (expected.has(name)) assert.equal(value, expected.get(name), `${script.fileName}: ${name}`);
      }
      // A misspelt constant would be nil in Lua and fail only on its path.
      for (const [name] of code(script.source).matchAll(CONSTANT)) {
        assert.ok(locals.has(name), `${script.fileName} uses ${name}, which it does not define`);
        assert.ok(expected.has(name), `${script.fileName}: ${name} is not a TypeScript constant`);
      }
    }
  });

  test("every reply code is replied by its script, and no script replies a bare number as a code", () => {
    const replies = { "admit-n.lua": ADMIT, "finish-7.lua": FINISH, "release-7.lua": RELEASE, "cancel-n.lua": CANCEL };
    const prefixes = {
      "admit-n.lua": "ADMIT",
      "finish-7.lua": "FINISH",
      "release-7.lua": "RELEASE",
      "cancel-n.lua": "CANCEL",
    };
    for (const [file, constants] of Object.entries(replies)) {
      const own = code(ownText.get(file)!);
      for (const key of Object.keys(constants)) {
        assert.match(
          own,
          new RegExp(`\\b${prefixes[file as keyof typeof prefixes]}_${key}\\b`),
          `${file} replies ${key}`,
        );
      }
    }
    for (const file of Object.keys(replies)) {
      const own = code(ownText.get(file)!);
      assert.doesNotMatch(own, /\breturn\s+-?\d|\breturn\s*\{\s*-?\d|\breply\(\s*\d/, `${file} names its reply codes`);
    }
  });

  test("every task field is written by a script and read by a script or GetTask; no unnamed field", () => {
    const lua = [...ownText.values()].map(code).join("\n");
    const store = readFileSync(new URL("../../src/redis/redis-store.ts", import.meta.url), "utf8");
    for (const key of Object.keys(TASK_FIELD)) {
      assert.match(lua, new RegExp(`\\bFIELD_${key}\\b`), `FIELD_${key} is used in Lua`);
      const readInLua = new RegExp(`'(?:HGET|HMGET)'[^\\n]*\\bFIELD_${key}\\b`).test(lua);
      assert.ok(readInLua || new RegExp(`TASK_FIELD\\.${key}\\b`).test(store), `TASK_FIELD.${key} is read`);
    }
    // Hash commands on a task record name their fields with FIELD_ constants.
    const taskKey: Record<string, string> = {
      "admit-n.lua": "KEYS[3]",
      "admit-outcome-n.lua": "KEYS[1]",
      "finish-7.lua": "KEYS[1]",
      "release-7.lua": "KEYS[1]",
      "cancel-n.lua": "record",
      "includes/cancelled.lua": "record",
      "claim-n.lua": "task",
      "includes/dead-letter.lua": "task",
      "includes/task-record.lua": "task",
      "includes/lease.lua": "task",
      "includes/expired.lua": "record",
    };
    for (const [file, text] of ownText) {
      const key = taskKey[file];
      if (key === undefined) continue;
      const calls = [...code(text).matchAll(/redis\.call\('H(?:SET|GET|MGET|DEL|INCRBY)', ([\w[\]]+)[^)]*\)/g)];
      for (const [call, target] of calls) {
        if (target === key) assert.doesNotMatch(call, /, '[a-z]+'/, `${file}: ${call} names a field by a literal`);
      }
    }
  });
});
