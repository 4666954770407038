// Configuration: parseConfig's defaults, one clear
// ConfigError per bad value naming the variable or flag, flags over
// environment, unknown flags. No I/O.
import assert from "node:assert/strict";
import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import { describe, test } from "node:test";
import { ConfigError, parseConfig } from "../../src/config.js";

function configError(run: () => unknown, ...mustMention: (string | RegExp)[]): ConfigError {
  let thrown: unknown;
  try {
    run();
  } catch (error) {
    thrown = error;
  }
  assert.ok(
    thrown instanceof ConfigError,
    `expected a ConfigError, got ${thrown === undefined ? "no error" : String(thrown)}`,
  );
  for (const text of mustMention) {
    if (typeof text === "string") assert.ok(thrown.message.includes(text), `"${thrown.message}" mentions ${text}`);
    else assert.match(thrown.message, text);
  }
  assert.ok(!thrown.message.includes("\n"), `one line: "${thrown.message}"`);
  return thrown;
}

describe("parseConfig defaults", () => {
  test("with nothing set, every setting has its documented default", () => {
    const config = parseConfig({});
    assert.equal(config.host, "0.0.0.0");
    assert.equal(config.port, 50051);
    assert.equal(config.workers, availableParallelism());
    assert.equal(config.redisUrl, undefined, "unset: embedded redis-server");
    assert.equal(config.dataDir, resolve(".tollgate"));
    assert.deepEqual(config.ratePolicy, [
      { limit: 1, durationMs: 1_000 },
      { limit: 20, durationMs: 60_000 },
    ]);
    assert.equal(config.maxBacklog, 10_000);
    assert.equal(config.handler, undefined, "built-in handler");
    assert.equal(config.taskLog, resolve(".tollgate", "tasks.log"));
    assert.equal(config.metricsPort, 9464);
    assert.equal(config.authKeys, undefined);
    assert.equal(config.tlsCert, undefined);
    assert.equal(config.tlsKey, undefined);
    assert.equal(config.tlsCa, undefined);
    assert.equal(config.logLevel, "info");
    assert.ok(Number.isInteger(config.concurrency) && config.concurrency >= 1);
    assert.ok(Number.isInteger(config.maxPayloadBytes) && config.maxPayloadBytes > 0);
  });

  test("the config is read-only", () => {
    const config = parseConfig({});
    assert.ok(Object.isFrozen(config));
    assert.throws(() => {
      (config as { port: number }).port = 1;
    }, TypeError);
  });

  test("the task log follows the data dir", () => {
    const config = parseConfig({ TOLLGATE_DATA_DIR: "/var/lib/tollgate" });
    assert.equal(config.dataDir, "/var/lib/tollgate");
    assert.equal(config.taskLog, "/var/lib/tollgate/tasks.log");
  });

  test("good values are parsed", () => {
    const config = parseConfig({
      TOLLGATE_HOST: "127.0.0.1",
      TOLLGATE_PORT: "0",
      TOLLGATE_WORKERS: "3",
      TOLLGATE_REDIS_URL: "redis://cache.internal:6380/2",
      TOLLGATE_RATE_LIMITS: "5/1s,100/1h",
      TOLLGATE_MAX_BACKLOG: "3",
      TOLLGATE_CONCURRENCY: "8",
      TOLLGATE_MAX_PAYLOAD_BYTES: "1024",
      TOLLGATE_METRICS_PORT: "0",
      TOLLGATE_LOG_LEVEL: "silent",
      TOLLGATE_LOG_FORMAT: "pretty",
      TOLLGATE_TLS_CERT: "/tls/cert.pem",
      TOLLGATE_TLS_KEY: "/tls/key.pem",
    });
    assert.equal(config.host, "127.0.0.1");
    assert.equal(config.port, 0);
    assert.equal(config.workers, 3);
    assert.equal(config.redisUrl, "redis://cache.internal:6380/2");
    assert.deepEqual(config.ratePolicy, [
      { limit: 5, durationMs: 1_000 },
      { limit: 100, durationMs: 3_600_000 },
    ]);
    assert.equal(config.maxBacklog, 3);
    assert.equal(config.concurrency, 8);
    assert.equal(config.maxPayloadBytes, 1024);
    assert.equal(config.metricsPort, 0);
    assert.equal(config.logLevel, "silent");
    assert.equal(config.logFormat, "pretty");
    assert.equal(config.tlsCert, "/tls/cert.pem");
  });
});

describe("parseConfig rejects each bad value, naming the variable", () => {
  const bad: [variable: string, value: string][] = [
    ["TOLLGATE_PORT", "abc"],
    ["TOLLGATE_PORT", "65536"],
    ["TOLLGATE_PORT", "-1"],
    ["TOLLGATE_PORT", "80.5"],
    ["TOLLGATE_WORKERS", "0"],
    ["TOLLGATE_WORKERS", "many"],
    ["TOLLGATE_REDIS_URL", "http://localhost:6379"],
    ["TOLLGATE_REDIS_URL", "localhost:6379"],
    ["TOLLGATE_RATE_LIMITS", "fast"],
    ["TOLLGATE_RATE_LIMITS", "1/500ms"],
    ["TOLLGATE_MAX_BACKLOG", "0"],
    ["TOLLGATE_MAX_BACKLOG", "1e6"],
    ["TOLLGATE_CONCURRENCY", "many"],
    ["TOLLGATE_CONCURRENCY", "-1"],
    ["TOLLGATE_MAX_PAYLOAD_BYTES", "-5"],
    ["TOLLGATE_MAX_PAYLOAD_BYTES", "1GB"],
    ["TOLLGATE_METRICS_PORT", "99999"],
    ["TOLLGATE_LOG_LEVEL", "loud"],
    ["TOLLGATE_LOG_FORMAT", "xml"],
  ];
  for (const [variable, value] of bad) {
    test(`${variable}=${JSON.stringify(value)}`, () => {
      configError(() => parseConfig({ [variable]: value }), variable, value);
    });
  }

  test("TLS cert without key", () => {
    configError(() => parseConfig({ TOLLGATE_TLS_CERT: "/tls/cert.pem" }), "TOLLGATE_TLS_KEY");
  });

  test("a bad Redis URL's password is not repeated in the message", () => {
    const error = configError(
      () => parseConfig({ TOLLGATE_REDIS_URL: "redis://admin:hunter2@cache internal:6379" }),
      "TOLLGATE_REDIS_URL",
    );
    assert.ok(!error.message.includes("hunter2"), `the password leaked: "${error.message}"`);
  });
});

describe("parseConfig flags", () => {
  test("a flag beats its environment variable, in both --flag value and --flag=value forms", () => {
    const env = { TOLLGATE_PORT: "1000", TOLLGATE_RATE_LIMITS: "1/1s", TOLLGATE_LOG_LEVEL: "debug" };
    const config = parseConfig(env, ["--port", "2000", "--rate-limits=3/1m", "--log-level", "warn"]);
    assert.equal(config.port, 2000);
    assert.deepEqual(config.ratePolicy, [{ limit: 3, durationMs: 60_000 }]);
    assert.equal(config.logLevel, "warn");
    assert.equal(parseConfig(env, ["--max-backlog=7"]).port, 1000, "the variable still counts without its flag");
  });

  test("every documented flag is accepted", () => {
    const config = parseConfig({}, [
      "--host",
      "::1",
      "--port",
      "1",
      "--workers",
      "2",
      "--redis-url",
      "rediss://r:6379",
      "--data-dir",
      "/d",
      "--rate-limits",
      "2/1s",
      "--max-backlog",
      "5",
      "--concurrency",
      "4",
      "--handler",
      "/h.mjs",
      "--task-log",
      "/t.log",
      "--metrics-port",
      "0",
      "--max-attempts",
      "3",
      "--task-timeout-ms",
      "500",
      "--lease-ms",
      "1000",
      "--retry-backoff-ms",
      "10",
      "--shutdown-grace-ms",
      "100",
      "--heartbeat-timeout-ms",
      "2000",
      "--tls-cert",
      "/c",
      "--tls-key",
      "/k",
      "--tls-ca",
      "/ca",
      "--log-level",
      "error",
    ]);
    assert.equal(config.host, "::1");
    assert.equal(config.workers, 2);
    assert.equal(config.redisUrl, "rediss://r:6379");
    assert.equal(config.dataDir, "/d");
    assert.equal(config.handler, "/h.mjs");
    assert.equal(config.taskLog, "/t.log");
    assert.equal(config.maxAttempts, 3);
    assert.equal(config.leaseMs, 1000);
    assert.equal(config.heartbeatTimeoutMs, 2000);
    assert.equal(config.tlsCa, "/ca");
  });

  test("TOLLGATE_AUTH_KEYS is a path, resolved", () => {
    assert.equal(parseConfig({ TOLLGATE_AUTH_KEYS: "keys.txt" }).authKeys, resolve("keys.txt"));
  });

  test("a bad flag value names the flag, not the variable", () => {
    const error = configError(() => parseConfig({ TOLLGATE_PORT: "8080" }, ["--port", "http"]), "--port", "http");
    assert.ok(!error.message.includes("TOLLGATE_PORT"), `"${error.message}" blames the flag`);
    configError(() => parseConfig({}, ["--rate-limits=1/0s"]), "--rate-limits");
    configError(() => parseConfig({}, ["--log-level", "chatty"]), "--log-level", "chatty");
  });

  test("an unknown flag is refused by name", () => {
    configError(() => parseConfig({}, ["--prot", "50051"]), "--prot");
    configError(() => parseConfig({}, ["--redis", "redis://x"]), "--redis");
  });

  test("a flag without its value, and a stray argument, are refused", () => {
    configError(() => parseConfig({}, ["--port"]), "--port");
    configError(() => parseConfig({}, ["50051"]), "50051");
  });
});
