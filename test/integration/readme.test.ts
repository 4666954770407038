// The README stays true: its configuration table lists every setting with its
// flag and default, and its handler example (examples/handlers.mjs) works as
// described.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { SETTINGS } from "../../src/config.js";
import { usePrivateRedis } from "../support/fixture.js";
import { startTestServer } from "../support/server.js";
import { Disposition, TaskState } from "../../gen/ts/tollgate/v1/task_service_pb.js";
import { pollUntil } from "../support/expect.js";

// The configuration table lives in docs/configuration.md, the handler example in
// docs/api.md (Handlers); the README links to both.
const CONFIGURATION = fileURLToPath(new URL("../../docs/configuration.md", import.meta.url));
const API = fileURLToPath(new URL("../../docs/api.md", import.meta.url));
const EXAMPLE_HANDLERS = fileURLToPath(new URL("../../examples/handlers.mjs", import.meta.url));

const ctx = usePrivateRedis("readme");

test("docs/configuration.md's table lists every setting with its flag and default", async () => {
  const page = await readFile(CONFIGURATION, "utf8");
  for (const spec of Object.values(SETTINGS)) {
    const row = page.split("\n").find((line) => line.startsWith(`| \`${spec.env}\` |`));
    assert.ok(row, `docs/configuration.md has no row for ${spec.env}`);
    assert.ok(row.includes(`\`--${spec.flag}\``), `${spec.env}'s row names --${spec.flag}`);
    assert.ok(row.includes(spec.defaultText), `${spec.env}'s row gives the default ${spec.defaultText}`);
  }
});

test("docs/api.md's handler example is examples/handlers.mjs, and it works as the page says", async () => {
  const page = await readFile(API, "utf8");
  const example = await readFile(EXAMPLE_HANDLERS, "utf8");
  const shown = /\n## Handlers\n[\s\S]*?```js\n([\s\S]*?)```/.exec(page)?.[1];
  assert.ok(shown, "docs/api.md's Handlers section has a js example");
  assert.ok(example.includes(shown.trim()), "docs/api.md shows the example file's code");

  const output = join(ctx.dir, "example-output.log");
  process.env.EXAMPLE_OUTPUT = output;
  const tollgate = await startTestServer(ctx.redis.url, {
    TOLLGATE_HANDLER: EXAMPLE_HANDLERS,
    TOLLGATE_RATE_LIMITS: "10/1s",
    TOLLGATE_RETRY_BACKOFF_MS: "50",
    TOLLGATE_REQUIRE_KNOWN_KINDS: "yes",
  });
  try {
    const hello = await tollgate.client.submit({ userId: "123", payload: new TextEncoder().encode("hello") });
    assert.equal(hello.disposition, Disposition.STARTED);
    await pollUntil(
      "the default handler's line",
      async () => (await readFile(output, "utf8").catch(() => "")).includes(`123 ${hello.taskId} hello`),
      { timeoutMs: 5_000 },
    );

    const failing = await tollgate.client.submit({ userId: "123", kind: "fail" });
    await pollUntil(
      "kind fail to succeed on its second attempt",
      async () => (await tollgate.client.getTask({ taskId: failing.taskId })).task?.state === TaskState.SUCCEEDED,
      { timeoutMs: 5_000 },
    );
    assert.equal((await tollgate.client.getTask({ taskId: failing.taskId })).task!.attempts, 2);

    const paused = await tollgate.client.submit({
      userId: "123",
      kind: "pause",
      payload: new TextEncoder().encode("10"),
    });
    await pollUntil(
      "kind pause to finish",
      async () => (await tollgate.client.getTask({ taskId: paused.taskId })).task?.state === TaskState.SUCCEEDED,
      { timeoutMs: 5_000 },
    );
    await assert.rejects(
      tollgate.client.submit({ userId: "123", kind: "nope" }),
      /kind: no handler or connected worker runs kind "nope"; known: fail, pause/,
    );
  } finally {
    await tollgate.close();
    delete process.env.EXAMPLE_OUTPUT;
  }
});
