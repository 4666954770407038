// The Lua scripts as Redis sees them: each expanded source (includes in
// place) compiles under the SHA LuaScript sends, and the generated constants
// evaluate in Redis to the TypeScript values (reply codes, task fields).
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { test } from "node:test";
import { TASK_FIELD, TASK_STATE } from "../../src/redis/keys.js";
import { expandIncludes, LuaScript } from "../../src/redis/lua-script.js";
import { ADMIT, FINISH, RELEASE } from "../../src/redis/reply-codes.js";
import { usePrivateRedis } from "../support/fixture.js";

const ctx = usePrivateRedis("lua-scripts");

test("every script's expanded source loads into Redis under the SHA LuaScript sends", async () => {
  const redis = ctx.redis.client();
  try {
    const files = readdirSync(new URL("../../src/redis/lua/", import.meta.url)).filter((file) => file.endsWith(".lua"));
    for (const file of files) {
      const script = new LuaScript(file);
      assert.equal(await redis.script("LOAD", script.source), script.sha, file);
    }
  } finally {
    redis.disconnect();
  }
});

test("the generated includes evaluate in Redis to the TypeScript constants", async () => {
  const redis = ctx.redis.client();
  try {
    const groups = { ADMIT, FINISH, RELEASE, FIELD: TASK_FIELD, STATE: TASK_STATE };
    const names = Object.entries(groups).flatMap(([prefix, constants]) =>
      Object.keys(constants).map((key) => `${prefix}_${key}`),
    );
    const expected = Object.values(groups).flatMap((constants) => Object.values(constants).map(String));
    const source = expandIncludes(
      `--- @include "reply-codes"\n--- @include "task-fields"\nreturn {${names.join(", ")}}`,
    );
    const values = (await redis.eval(source, 0)) as (string | number)[];
    assert.deepEqual(values.map(String), expected);
  } finally {
    redis.disconnect();
  }
});
