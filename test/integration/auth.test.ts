// API-key auth: parsing the key file, UNAUTHENTICATED without a known key, a
// user acting only as itself, admins acting for anyone, health and reflection
// open without a key, oversized metadata refused, and a bad key file stopping
// `tollgate serve` at start-up.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Metadata } from "@grpc/grpc-js";
import { createHealthClient, createTollgateClient } from "../../src/client/client.js";
import { parseApiKeys } from "../../src/grpc/api-keys.js";
import { ConfigError } from "../../src/config.js";
import { TestRedis } from "../support/redis.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { HealthCheckResponse_ServingStatus } from "../../gen/ts/grpc/health/v1/health_pb.js";
import { Disposition, TaskService } from "../../gen/ts/tollgate/v1/task_service_pb.js";

const run = promisify(execFile);
const ALICE_KEY = "alice-key-0123456789abcdef";
const BOB_KEY = "bob-key-0123456789abcdef01";
const ADMIN_KEY = "admin-key-0123456789abcdef";
const KEY_FILE = `# Tollgate API keys
${ALICE_KEY}  user:alice
${BOB_KEY} user:bob
${ADMIN_KEY} admin
`;

function bearer(key: string): Metadata {
  const metadata = new Metadata();
  metadata.set("authorization", `Bearer ${key}`);
  return metadata;
}

describe("API key file", () => {
  test("maps keys to users and admins; unknown or missing keys identify nobody", () => {
    const auth = parseApiKeys(KEY_FILE);
    assert.deepEqual(auth.identify(bearer(ALICE_KEY)), { kind: "user", userId: "alice" });
    assert.equal(auth.identify(bearer(ADMIN_KEY))?.kind, "admin");
    assert.equal(auth.identify(bearer("not-a-key-0123456789abcdef")), undefined);
    assert.equal(auth.identify(bearer(`${ALICE_KEY}x`)), undefined);
    assert.equal(auth.identify(new Metadata()), undefined);
    const basic = new Metadata();
    basic.set("authorization", `Basic ${ALICE_KEY}`);
    assert.equal(auth.identify(basic), undefined);
  });

  test("a bad file is a clear error naming the line", () => {
    const cases: [string, RegExp][] = [
      ["", /has no keys/],
      [`${ALICE_KEY}`, /line 1: expected/],
      [`# ok\nshort user:a`, /line 2: a key is 16 to 256/],
      [`${ALICE_KEY} owner`, /line 1: the role must be/],
      [`${ALICE_KEY} user:`, /line 1: user id: is required/],
      [`${ALICE_KEY} user:a\n${ALICE_KEY} user:b`, /line 2: this key appears twice/],
    ];
    for (const [text, message] of cases) {
      assert.throws(
        () => parseApiKeys(text),
        (error: unknown) => error instanceof ConfigError && message.test(error.message),
      );
    }
  });
});

describe("with TOLLGATE_AUTH_KEYS", () => {
  let redis: TestRedis;
  let dir: string;
  let tollgate: TestServer;
  // The client library sends `authorization: Bearer <key>` when given a key.
  const as = (key?: string): Client<typeof TaskService> =>
    createTollgateClient({ baseUrl: tollgate.address, apiKey: key });
  const code = async (call: Promise<unknown>): Promise<Code | "ok"> =>
    call.then(
      () => "ok" as const,
      (error: unknown) => (error instanceof ConnectError ? error.code : Promise.reject(error)),
    );

  before(async () => {
    redis = await TestRedis.start();
    dir = await mkdtemp(join(tmpdir(), "tollgate-auth-"));
    await writeFile(join(dir, "keys"), KEY_FILE);
    tollgate = await startTestServer(redis.url, {
      TOLLGATE_AUTH_KEYS: join(dir, "keys"),
      TOLLGATE_RATE_LIMITS: "10/1s",
    });
  });
  after(async () => {
    await tollgate?.close();
    await redis?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test("no key or an unknown key: UNAUTHENTICATED, on every TaskService method", async () => {
    for (const client of [as(), as("wrong-key-0123456789abcdef")]) {
      assert.equal(await code(client.submit({ userId: "alice" })), Code.Unauthenticated);
      assert.equal(await code(client.getTask({ taskId: "0.AAAAAAAAAAAAAAAAAAAAAA" })), Code.Unauthenticated);
      assert.equal(
        await code(
          (async () => {
            for await (const _ of client.watchQueue({ userId: "alice" })) break;
          })(),
        ),
        Code.Unauthenticated,
      );
    }
    assert.equal((await tollgate.store.queuedTaskIds("alice")).length, 0);
  });

  test("a user acts only as itself: another user's submit, watch or task is PERMISSION_DENIED", async () => {
    const alice = as(ALICE_KEY);
    const own = await alice.submit({ userId: "alice" });
    assert.equal(own.disposition, Disposition.STARTED);
    const implicit = await alice.submit({});
    assert.ok(implicit.taskId, "an empty user_id means the key's user");
    assert.equal((await alice.getTask({ taskId: implicit.taskId })).task!.userId, "alice");

    const denied = await alice.submit({ userId: "bob" }).catch((error: unknown) => error as ConnectError);
    assert.ok(denied instanceof ConnectError && denied.code === Code.PermissionDenied);
    assert.match(denied.rawMessage, /acts for user "alice" only/);
    assert.equal(
      await code(
        (async () => {
          for await (const _ of alice.watchQueue({ userId: "bob" })) break;
        })(),
      ),
      Code.PermissionDenied,
    );
    assert.equal(
      await code(
        (async () => {
          for await (const _ of alice.watchQueue({ userId: "" })) break;
        })(),
      ),
      Code.PermissionDenied,
    );
    const bobs = await as(BOB_KEY).submit({ userId: "bob" });
    assert.equal(await code(alice.getTask({ taskId: bobs.taskId })), Code.PermissionDenied);
    assert.equal(await code(as(BOB_KEY).getTask({ taskId: bobs.taskId })), "ok");
  });

  test("an admin acts for any user and watches every queue", async () => {
    const admin = as(ADMIN_KEY);
    const forCarol = await admin.submit({ userId: "carol" });
    assert.ok(forCarol.taskId);
    assert.equal(await code(admin.getTask({ taskId: forCarol.taskId })), "ok");
    for await (const message of admin.watchQueue({ userId: "" })) {
      assert.equal(message.userId, "");
      break;
    }
    assert.equal(await code(admin.submit({})), Code.InvalidArgument, "an admin must name the user");
  });

  test("health and reflection stay open without a key", async () => {
    const health = createHealthClient({ baseUrl: tollgate.address });
    assert.equal((await health.check({ service: "" })).status, HealthCheckResponse_ServingStatus.SERVING);
    const buf = fileURLToPath(new URL("../../node_modules/.bin/buf", import.meta.url));
    // Not spawnSync: the server shares this process's event loop.
    const listed = await run(buf, [
      "curl",
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "--list-methods",
      tollgate.address,
    ]);
    assert.match(listed.stdout, /tollgate\.v1\.TaskService\/Submit/);
    // And with a key, as the README shows.
    const submitted = await run(buf, [
      "curl",
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "-H",
      `authorization: Bearer ${ALICE_KEY}`,
      "-d",
      '{"user_id":"alice"}',
      `${tollgate.address}/tollgate.v1.TaskService/Submit`,
    ]);
    assert.match(submitted.stdout, /"taskId"/);
  });

  test("oversized metadata is refused with INVALID_ARGUMENT", async () => {
    const client = createClient(
      TaskService,
      createGrpcTransport({
        baseUrl: tollgate.address,
        interceptors: [
          (next) => (request) => {
            request.header.set("x-padding", "p".repeat(10_000));
            return next(request);
          },
        ],
      }),
    );
    assert.equal(await code(client.submit({ userId: "alice" })), Code.InvalidArgument);
  });
});

describe("tollgate serve with auth", () => {
  const BIN = fileURLToPath(new URL("../../bin/tollgate.js", import.meta.url));

  test("a bad key file stops start-up with one line naming the line, exit 2", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tollgate-auth-bad-"));
    try {
      await writeFile(join(dir, "keys"), `${ALICE_KEY} user:alice\nshort admin\n`);
      const result = await run(process.execPath, [BIN, "serve"], {
        env: { ...process.env, TOLLGATE_AUTH_KEYS: join(dir, "keys"), TOLLGATE_REDIS_URL: "redis://127.0.0.1:1" },
      }).catch((error: { code: number; stderr: string }) => error);
      assert.equal((result as { code: number }).code, 2);
      assert.match((result as { stderr: string }).stderr, /^tollgate: TOLLGATE_AUTH_KEYS line 2: a key is 16 to 256/);
      assert.equal((result as { stderr: string }).stderr.trim().split("\n").length, 1);
      assert.ok(!(result as { stderr: string }).stderr.includes(ALICE_KEY), "no key is echoed");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
