// With auth on, every method of every service needs a key, including a
// method added to TaskService later and a service added beside it, and its
// handler sees who called; only health and reflection stay open. The extra
// services are added by startServer's own code path, behind the same
// interceptors as TaskService.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  Client,
  Metadata,
  credentials,
  status as Status,
  type Server,
  type ServerReadableStream,
  type ServerUnaryCall,
  type ServiceDefinition,
  type ServiceError,
  type sendUnaryData,
} from "@grpc/grpc-js";
import type { RedisClient } from "../../src/redis/connection.js";
import { parseConfig } from "../../src/config.js";
import { createLogger } from "../../src/logger.js";
import { connectRedis } from "../../src/redis/connection.js";
import { createRedisStore } from "../../src/redis/create-redis-store.js";
import type { RedisStore } from "../../src/redis/redis-store.js";
import { callContextOf } from "../../src/grpc/call-context.js";
import { startServer, type RunningServer } from "../../src/grpc/server.js";
import { TestRedis } from "../support/redis.js";

const ALICE_KEY = "alice-key-0123456789abcdef";
const ADMIN_KEY = "admin-key-0123456789abcdef";

const raw = (bytes: Buffer): Buffer => bytes;
const method = (path: string, requestStream: boolean) => ({
  path,
  requestStream,
  responseStream: false,
  requestSerialize: raw,
  requestDeserialize: raw,
  responseSerialize: raw,
  responseDeserialize: raw,
});

// A unary method as if added to TaskService, and a client-streaming method
// of a service of its own; both answer with the caller the interceptor found.
const NEW_TASK_SERVICE_METHOD = "/tollgate.v1.TaskService/WhoAmI";
const OTHER_SERVICE_METHOD = "/tollgate.test.v1.Extra/CountAs";
const callerOf = (call: { readonly metadata: Metadata }): Buffer =>
  Buffer.from(JSON.stringify(callContextOf(call).caller));

function addServices(server: Server): void {
  server.addService({ whoAmI: method(NEW_TASK_SERVICE_METHOD, false) } as ServiceDefinition, {
    whoAmI: (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => callback(null, callerOf(call)),
  });
  server.addService({ countAs: method(OTHER_SERVICE_METHOD, true) } as ServiceDefinition, {
    countAs: (call: ServerReadableStream<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
      let messages = 0;
      call.on("data", () => messages++);
      call.on("end", () => callback(null, Buffer.from(`${messages} ${callerOf(call).toString()}`)));
    },
  });
}

function bearer(key?: string): Metadata {
  const metadata = new Metadata();
  if (key) metadata.set("authorization", `Bearer ${key}`);
  return metadata;
}

type Answer = { ok: true; body: string } | { ok: false; code: Status; details: string };

const answer = (resolve: (answer: Answer) => void) => (error: ServiceError | null, body?: Buffer) =>
  resolve(error ? { ok: false, code: error.code, details: error.details } : { ok: true, body: body!.toString() });

describe("with auth on, every service but health and reflection needs a key", () => {
  let redis: TestRedis;
  let connection: RedisClient;
  let dir: string;
  let store: RedisStore;
  let server: RunningServer;
  let client: Client;

  const unary = (path: string, key?: string, body = Buffer.alloc(0)): Promise<Answer> =>
    new Promise((resolve) => client.makeUnaryRequest(path, raw, raw, body, bearer(key), answer(resolve)));
  const clientStream = (path: string, messages: number, key?: string): Promise<Answer> =>
    new Promise((resolve) => {
      const call = client.makeClientStreamRequest(path, raw, raw, bearer(key), answer(resolve));
      for (let i = 0; i < messages; i++) call.write(Buffer.from("x"));
      call.end();
    });

  before(async () => {
    redis = await TestRedis.start();
    dir = await mkdtemp(join(tmpdir(), "tollgate-auth-every-"));
    await writeFile(join(dir, "keys"), `${ALICE_KEY} user:alice\n${ADMIN_KEY} admin\n`);
    const config = parseConfig({
      TOLLGATE_HOST: "127.0.0.1",
      TOLLGATE_PORT: "0",
      TOLLGATE_REDIS_URL: redis.url,
      TOLLGATE_DATA_DIR: dir,
      TOLLGATE_AUTH_KEYS: join(dir, "keys"),
      TOLLGATE_LOG_LEVEL: process.env.TOLLGATE_TEST_LOG_LEVEL ?? "silent",
    });
    const logger = createLogger(config.logLevel);
    connection = await connectRedis(redis.url, logger);
    store = createRedisStore(connection, config);
    server = await startServer(config, store, logger, { addServices });
    client = new Client(`127.0.0.1:${server.port}`, credentials.createInsecure());
  });
  after(async () => {
    client?.close();
    await server?.close(1_000);
    store?.close();
    connection?.disconnect();
    await redis?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test("a method added to TaskService: UNAUTHENTICATED without a key or with a wrong one, served with one", async () => {
    for (const key of [undefined, "wrong-key-0123456789abcdef"]) {
      const refused = await unary(NEW_TASK_SERVICE_METHOD, key);
      assert.ok(!refused.ok && refused.code === Status.UNAUTHENTICATED, JSON.stringify(refused));
    }
    assert.deepEqual(await unary(NEW_TASK_SERVICE_METHOD, ALICE_KEY), {
      ok: true,
      body: '{"kind":"user","userId":"alice"}',
    });
    // An admin is named in logs by its key's fingerprint: the digest's first 12 hex digits, not the key.
    const keyId = createHash("sha256").update(ADMIN_KEY).digest("hex").slice(0, 12);
    assert.deepEqual(await unary(NEW_TASK_SERVICE_METHOD, ADMIN_KEY), {
      ok: true,
      body: JSON.stringify({ kind: "admin", keyId }),
    });
  });

  test("a service added beside TaskService, with a streaming request: the same, and its messages pass through", async () => {
    const refused = await clientStream(OTHER_SERVICE_METHOD, 2);
    assert.ok(!refused.ok && refused.code === Status.UNAUTHENTICATED, JSON.stringify(refused));
    assert.deepEqual(await clientStream(OTHER_SERVICE_METHOD, 3, ALICE_KEY), {
      ok: true,
      body: '3 {"kind":"user","userId":"alice"}',
    });
  });

  test("health answers without a key", async () => {
    // HealthCheckRequest { service: "" } is empty; the reply is { status: SERVING (1) }.
    assert.deepEqual(await unary("/grpc.health.v1.Health/Check", undefined), { ok: true, body: "\u0008\u0001" });
  });

  for (const version of ["v1", "v1alpha"]) {
    test(`reflection (${version}) answers without a key`, async () => {
      const path = `/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`;
      const reply = await new Promise<Answer>((resolve) => {
        const call = client.makeBidiStreamRequest(path, raw, raw, bearer());
        call.once("data", (body: Buffer) => {
          resolve({ ok: true, body: body.toString("latin1") });
          call.end();
        });
        call.on("error", (error: ServiceError) => resolve({ ok: false, code: error.code, details: error.details }));
        // ServerReflectionRequest { list_services = 7: "*" }
        call.write(Buffer.from([0x3a, 0x01, 0x2a]));
      });
      assert.ok(reply.ok, JSON.stringify(reply));
      assert.match(reply.body, /tollgate\.v1\.TaskService/);
    });
  }
});
