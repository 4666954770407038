// TLS and mutual TLS, with every client people use: the TypeScript client,
// the CLI, buf curl through reflection and grpc-health-probe; plaintext,
// untrusted servers and clients without a certificate are refused.
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { once } from "node:events";
import { rm } from "node:fs/promises";
import { connect } from "node:net";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { ConnectError } from "@connectrpc/connect";
import { createTollgateClient } from "../../src/client/client.js";
import { makeCertificates, type TestCertificates } from "../support/certs.js";
import { TestRedis } from "../support/redis.js";
import { startTestServer, type TestServer } from "../support/server.js";

const execFileAsync = promisify(execFile);
/** A tool run, which fails rather than hangs the file. */
const run = (file: string, args: string[]) => execFileAsync(file, args, { timeout: 30_000 });
/** Every call has a deadline: a refusal that never came shows as a failed assertion, not a stuck file. */
const CALL = { timeoutMs: 10_000 };
const BIN = fileURLToPath(new URL("../../bin/tollgate.js", import.meta.url));
const hasProbe = spawnSync("grpc-health-probe", ["-version"]).status === 0;

let redis: TestRedis;
let certs: TestCertificates;

before(async () => {
  redis = await TestRedis.start();
  certs = await makeCertificates();
});
after(async () => {
  await redis?.stop();
  if (certs) await rm(certs.dir, { recursive: true, force: true });
});

describe("TLS", () => {
  let tollgate: TestServer;
  let addr: string;
  before(async () => {
    tollgate = await startTestServer(redis.url, {
      TOLLGATE_TLS_CERT: certs.serverCert,
      TOLLGATE_TLS_KEY: certs.serverKey,
    });
    addr = `localhost:${tollgate.server.port}`;
  });
  after(async () => tollgate?.close());

  test("the TS client speaks TLS with the CA; plaintext and an untrusted server are refused", async () => {
    const client = createTollgateClient({ baseUrl: `https://${addr}`, tls: { ca: certs.ca } });
    assert.ok((await client.submit({ userId: "tls" }, CALL)).taskId);
    const plaintext = createTollgateClient({ baseUrl: `http://${addr}` });
    await assert.rejects(plaintext.submit({ userId: "tls" }, CALL), ConnectError);
    const untrusted = createTollgateClient({ baseUrl: `https://${addr}` });
    await assert.rejects(untrusted.submit({ userId: "tls" }, CALL), /certificate/i);
  });

  test("the CLI speaks TLS with --tls-ca", async () => {
    const { stdout } = await run(process.execPath, [
      BIN,
      "submit",
      "--addr",
      addr,
      "--tls-ca",
      certs.ca,
      "--user",
      "tls",
      "--json",
    ]);
    assert.match(stdout, /"taskId"/);
    const health = await run(process.execPath, [BIN, "health", "--addr", addr, "--tls-ca", certs.ca]);
    assert.equal(health.stdout.trim(), "SERVING");
  });

  test("buf curl speaks TLS with --cacert, through reflection", async () => {
    const buf = fileURLToPath(new URL("../../node_modules/.bin/buf", import.meta.url));
    const { stdout } = await run(buf, [
      "curl",
      "--protocol",
      "grpc",
      "--cacert",
      certs.ca,
      "-d",
      '{"user_id":"tls-buf"}',
      `https://${addr}/tollgate.v1.TaskService/Submit`,
    ]);
    assert.match(stdout, /"disposition": "DISPOSITION_(STARTED|QUEUED)"/);
  });

  test("grpc-health-probe -tls works", async (t) => {
    if (!hasProbe) return t.skip("grpc-health-probe is not installed (.ci/run installs it)");
    const { stdout, stderr } = await run("grpc-health-probe", [`-addr=${addr}`, "-tls", `-tls-ca-cert=${certs.ca}`]);
    assert.match(stdout + stderr, /status: SERVING/);
  });
});

describe("mutual TLS", () => {
  let tollgate: TestServer;
  let addr: string;
  before(async () => {
    tollgate = await startTestServer(redis.url, {
      TOLLGATE_TLS_CERT: certs.serverCert,
      TOLLGATE_TLS_KEY: certs.serverKey,
      TOLLGATE_TLS_CA: certs.ca,
    });
    addr = `localhost:${tollgate.server.port}`;
  });
  after(async () => tollgate?.close());

  test("a client without a certificate is refused; one with a certificate signed by the CA gets in", async () => {
    const anonymous = createTollgateClient({ baseUrl: `https://${addr}`, tls: { ca: certs.ca } });
    await assert.rejects(anonymous.submit({ userId: "mtls" }, CALL), ConnectError);
    const known = createTollgateClient({
      baseUrl: `https://${addr}`,
      tls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey },
    });
    assert.ok((await known.submit({ userId: "mtls" }, CALL)).taskId);
    const cli = await run(process.execPath, [
      BIN,
      "task",
      (await known.submit({ userId: "mtls" }, CALL)).taskId,
      "--json",
      "--addr",
      addr,
      "--tls-ca",
      certs.ca,
      "--tls-cert",
      certs.clientCert,
      "--tls-key",
      certs.clientKey,
    ]);
    assert.match(cli.stdout, /"userId":"mtls"/);
  });

  test("grpc-health-probe with a client certificate", async (t) => {
    if (!hasProbe) return t.skip("grpc-health-probe is not installed (.ci/run installs it)");
    const { stdout, stderr } = await run("grpc-health-probe", [
      `-addr=${addr}`,
      "-tls",
      `-tls-ca-cert=${certs.ca}`,
      `-tls-client-cert=${certs.clientCert}`,
      `-tls-client-key=${certs.clientKey}`,
    ]);
    assert.match(stdout + stderr, /status: SERVING/);
    const refused = await run("grpc-health-probe", [`-addr=${addr}`, "-tls", `-tls-ca-cert=${certs.ca}`]).catch(
      (error: { code: number }) => error,
    );
    assert.notEqual((refused as { code?: number }).code ?? 0, 0);
  });
});

describe("shutdown with a TLS handshake in progress", () => {
  test("close() ends within its grace although a connection never finished its handshake", async () => {
    const tollgate = await startTestServer(redis.url, {
      TOLLGATE_TLS_CERT: certs.serverCert,
      TOLLGATE_TLS_KEY: certs.serverKey,
    });
    // A client that connected and said nothing: not an HTTP/2 session yet, so
    // grpc-js' forced shutdown does not end it, and its listener's close
    // waits for it (Node's TLS handshake timeout is two minutes).
    const silent = connect(tollgate.server.port, "127.0.0.1");
    await once(silent, "connect");
    try {
      const started = Date.now();
      await tollgate.close(); // a grace of 1 s
      const tookMs = Date.now() - started;
      assert.ok(tookMs < 30_000, `close() took ${tookMs} ms`);
    } finally {
      silent.destroy();
    }
  });
});
