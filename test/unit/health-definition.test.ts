// The grpc.health.v1 definition the bundle gives grpc-health-check in place of
// @grpc/proto-loader's (src/grpc/health-definition.ts), against the one
// proto-loader loads for it (grpc-health-check's own `service`, loaded here
// from node_modules as the sources run it): the same methods, the same bytes
// for what grpc-health-check writes, the same objects for what clients send.
// No I/O.
import assert from "node:assert/strict";
import { test } from "node:test";
import { service as protoLoaders } from "grpc-health-check";
import { loadSync } from "../../src/grpc/health-definition.js";

const ours = loadSync("health/v1/health.proto")["grpc.health.v1.Health"];

/** A method of both definitions, by name. */
function method(name: string) {
  const [mine, theirs] = [ours[name], protoLoaders[name]];
  assert.ok(mine && theirs, `both define ${name}`);
  return { mine, theirs };
}

/** HealthCheckRequest as a client writes it: `service` (field 1) as a length-delimited string. */
function checkRequest(service: string, ...more: number[]): Buffer {
  const bytes = Buffer.from(service, "utf8");
  return Buffer.from([0x0a, bytes.length, ...bytes, ...more]);
}

test("the same methods: names, paths, streaming and the implementation keys grpc-js' addService looks up", () => {
  assert.deepEqual(Object.keys(ours), Object.keys(protoLoaders));
  for (const name of Object.keys(protoLoaders)) {
    const { mine, theirs } = method(name);
    for (const field of ["path", "requestStream", "responseStream", "originalName"] as const) {
      assert.equal(mine[field], theirs[field], `${name}.${field}`);
    }
  }
  assert.deepEqual(
    Object.values(ours).map((definition) => definition.originalName),
    ["check", "watch", "list"],
    "HealthImplementation's keys",
  );
});

test("Check and Watch: a request decodes to the same plain object, `service` defaulting to an empty string", () => {
  const requests = [
    Buffer.alloc(0),
    checkRequest(""),
    checkRequest("tollgate.v1.TaskService"),
    checkRequest("dienst-ü-✓"),
    checkRequest("with.unknown.Fields", 0x10, 0x01, 0x1a, 0x01, 0x61),
  ];
  for (const name of ["Check", "Watch"]) {
    const { mine, theirs } = method(name);
    for (const bytes of requests) {
      const decoded = mine.requestDeserialize(bytes) as unknown;
      assert.deepEqual(decoded, theirs.requestDeserialize(bytes), `${name} ${bytes.toString("hex")}`);
      assert.equal(Object.getPrototypeOf(decoded), Object.prototype);
    }
    const written = { service: "tollgate.v1.TaskService" };
    assert.deepEqual(mine.requestSerialize(written), theirs.requestSerialize(written));
  }
});

test("Check and Watch: a status written by its name (enums as strings) reads back the same, by either definition", () => {
  const statuses = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN", 2, "NO_SUCH_STATUS"];
  for (const name of ["Check", "Watch"]) {
    const { mine, theirs } = method(name);
    for (const status of statuses) {
      const bytes: Buffer = mine.responseSerialize({ status });
      const expected: unknown = theirs.responseDeserialize(theirs.responseSerialize({ status }));
      assert.ok(Buffer.isBuffer(bytes), "a Buffer, as grpc-js copies it with Buffer's methods");
      assert.deepEqual(theirs.responseDeserialize(bytes), expected, `${name} ${status}`);
      assert.deepEqual(mine.responseDeserialize(bytes), expected, `${name} ${status}, read by ours`);
    }
    // The same bytes too, but for UNKNOWN, the default: protobufjs writes it when it is set, protobuf-es leaves it out.
    for (const status of ["SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"]) {
      assert.deepEqual(mine.responseSerialize({ status }), theirs.responseSerialize({ status }), `${name} ${status}`);
    }
  }
});

test("List: the same request object, and the same bytes for every service's status", () => {
  const { mine, theirs } = method("List");
  assert.deepEqual(mine.requestDeserialize(Buffer.alloc(0)), theirs.requestDeserialize(Buffer.alloc(0)));
  const statuses = { statuses: { "": { status: "SERVING" }, "tollgate.v1.TaskService": { status: "NOT_SERVING" } } };
  const bytes: Buffer = mine.responseSerialize(statuses);
  assert.deepEqual(bytes, theirs.responseSerialize(statuses));
  assert.deepEqual(mine.responseDeserialize(bytes), theirs.responseDeserialize(bytes));
});

test("bytes that do not decode throw, which grpc-js answers INTERNAL, as it does proto-loader's", () => {
  const { mine, theirs } = method("Check");
  const notDecodable = Buffer.from([0x07]); // field 0, wire type 7
  assert.throws(() => mine.requestDeserialize(notDecodable));
  assert.throws(() => theirs.requestDeserialize(notDecodable));
  // Stricter than protobufjs, which reads "a" from the first and U+FFFD from the second.
  assert.throws(() => mine.requestDeserialize(Buffer.from([0x0a, 0x05, 0x61])), /premature EOF/);
  assert.throws(() => mine.requestDeserialize(Buffer.from([0x0a, 0x02, 0xc3, 0x28])), /utf-8/);
});

test("any other file than grpc-health-check's throws rather than serving the wrong definition", () => {
  assert.throws(() => loadSync("grpc/channelz/v1/channelz.proto"), /knows only grpc\.health\.v1/);
});
