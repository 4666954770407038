// The API for browsers: `tollgate serve`'s HTTP port (the one that serves
// /metrics) answers TaskService over the Connect protocol and gRPC-Web, as a
// browser's generated client calls it, and each call meets what a gRPC call
// meets: the same auth, validation and rate policy, the same codes and
// messages, the same RetryInfo advice, WatchQueue streaming.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { createTollgateClient, retryAfterMs } from "../../src/client/client.js";
import { ADMIN_KEY, ALICE_KEY, writeKeyFile } from "../support/api-keys.js";
import { usePrivateRedis } from "../support/fixture.js";
import { type ServeProcess, serveSettings, startServeWithHttpPort } from "../support/serve-process.js";
import { Disposition, OverLimit, TaskService } from "../../gen/ts/tollgate/v1/task_service_pb.js";

const ctx = usePrivateRedis("web-api");

/** Sends the API key as a browser's client does, in the authorization header. */
function withKey(apiKey: string | undefined): Interceptor[] {
  if (!apiKey) return [];
  return [
    (next) => (request) => {
      request.header.set("authorization", `Bearer ${apiKey}`);
      return next(request);
    },
  ];
}

describe("the API for browsers on the HTTP port", () => {
  let serve: ServeProcess;
  let httpPort: number;

  before(async () => {
    const keys = await writeKeyFile(ctx.dir);
    ({ serve, httpPort } = await startServeWithHttpPort({
      ...serveSettings(ctx.redis.url, ctx.dir),
      TOLLGATE_AUTH_KEYS: keys,
    }));
  });
  after(async () => {
    serve?.child.kill("SIGTERM");
    await serve?.exited;
  });

  const transports: [string, (apiKey?: string) => Transport][] = [
    [
      "Connect (JSON)",
      (apiKey) =>
        createConnectTransport({
          baseUrl: `http://127.0.0.1:${httpPort}`,
          httpVersion: "1.1",
          useBinaryFormat: false,
          interceptors: withKey(apiKey),
        }),
    ],
    [
      "gRPC-Web",
      (apiKey) =>
        createGrpcWebTransport({
          baseUrl: `http://127.0.0.1:${httpPort}`,
          httpVersion: "1.1",
          interceptors: withKey(apiKey),
        }),
    ],
  ];
  const web = (make: (apiKey?: string) => Transport, apiKey?: string): Client<typeof TaskService> =>
    createClient(TaskService, make(apiKey));
  const grpc = (apiKey?: string) =>
    createTollgateClient({ baseUrl: `http://127.0.0.1:${serve.port}`, ...(apiKey ? { apiKey } : {}) });

  /** The error a call fails with. */
  async function failure(call: Promise<unknown>): Promise<ConnectError> {
    try {
      await call;
    } catch (error) {
      return ConnectError.from(error);
    }
    assert.fail("the call succeeded");
  }

  for (const [name, make] of transports) {
    test(`${name}: Submit and GetTask answer as over gRPC`, async () => {
      const alice = web(make, ALICE_KEY);
      const submitted = await alice.submit({ userId: "alice", payload: new TextEncoder().encode(name) });
      assert.ok([Disposition.STARTED, Disposition.QUEUED].includes(submitted.disposition));
      const task = await alice.getTask({ taskId: submitted.taskId });
      assert.equal(task.task?.userId, "alice");
    });

    test(`${name}: refused exactly as a gRPC call is (no key, another user's queue, a bad request)`, async () => {
      const cases: [string, (client: Client<typeof TaskService>) => Promise<unknown>, string | undefined][] = [
        ["no key", (client) => client.submit({ userId: "alice" }), undefined],
        ["alice for bob", (client) => client.submit({ userId: "bob" }), ALICE_KEY],
        ["no user_id", (client) => client.listTasks({}), ADMIN_KEY],
      ];
      for (const [what, call, key] of cases) {
        const viaWeb = await failure(call(web(make, key)));
        const viaGrpc = await failure(call(grpc(key)));
        assert.equal(Code[viaWeb.code], Code[viaGrpc.code], what);
        assert.equal(viaWeb.rawMessage, viaGrpc.rawMessage, what);
      }
    });

    test(`${name}: REJECT over the limit is RESOURCE_EXHAUSTED with the advice to retry`, async () => {
      const admin = web(make, ADMIN_KEY);
      const user = `web-reject-${name.length}`;
      await admin.submit({ userId: user });
      const refused = await failure(admin.submit({ userId: user, overLimit: OverLimit.REJECT }));
      assert.equal(refused.code, Code.ResourceExhausted);
      const retry = retryAfterMs(refused);
      assert.ok(retry !== undefined && retry > 0 && retry <= 1_000, `retry after ${retry} ms`);
    });

    test(`${name}: WatchQueue streams`, async () => {
      const alice = web(make, ALICE_KEY);
      const abort = new AbortController();
      try {
        for await (const message of alice.watchQueue({ userId: "alice", follow: true }, { signal: abort.signal })) {
          assert.equal(message.userId, "alice");
          break;
        }
      } finally {
        abort.abort();
      }
    });
  }

  test("GET /metrics is still served; an unknown path is 404", async () => {
    const metrics = await fetch(`http://127.0.0.1:${httpPort}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(await metrics.text(), /tollgate_tasks_submitted_total/);
    const missing = await fetch(`http://127.0.0.1:${httpPort}/nothing-here`);
    assert.equal(missing.status, 404);
  });
});
