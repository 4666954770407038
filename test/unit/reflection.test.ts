// Server reflection (src/grpc/reflection.ts) on the wire, without a server:
// requests encoded as grpcurl and buf curl send them, to both versions'
// handlers, and the answers decoded field by field. No I/O.
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { test } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import type { Server, ServiceDefinition, UntypedServiceImplementation } from "@grpc/grpc-js";
import { ReflectionService } from "../../src/grpc/reflection.js";
import { file_grpc_health_v1_health } from "../../gen/ts/grpc/health/v1/health_pb.js";
import { file_tollgate_v1_task_service } from "../../gen/ts/tollgate/v1/task_service_pb.js";

const V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
const V1ALPHA = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

interface Answer {
  host?: string;
  original?: Uint8Array;
  files?: string[];
  services?: string[];
  error?: { code: number; message: string };
  /** The status the call ended with, when it ended with one. */
  status?: { code: number; details: string };
}

/** Each method's handler by path, as the service registers them. */
function handlers(): Map<string, (call: unknown) => void> {
  const found = new Map<string, (call: unknown) => void>();
  const server = {
    addService(definition: ServiceDefinition, implementation: UntypedServiceImplementation) {
      for (const [name, method] of Object.entries(definition)) {
        found.set(method.path, implementation[name] as (call: unknown) => void);
      }
    },
  };
  new ReflectionService([file_tollgate_v1_task_service, file_grpc_health_v1_health]).addToServer(
    server as unknown as Server,
  );
  return found;
}

function request(field: number, value: string): Buffer {
  const bytes = new BinaryWriter()
    .tag(1, WireType.LengthDelimited)
    .string("localhost")
    .tag(field, WireType.LengthDelimited)
    .string(value)
    .finish();
  return Buffer.from(bytes);
}

function strings(bytes: Uint8Array, field: number): string[] {
  const reader = new BinaryReader(bytes);
  const out: string[] = [];
  while (reader.pos < reader.len) {
    const [number, wireType] = reader.tag();
    if (number === field) out.push(reader.string());
    else reader.skip(wireType);
  }
  return out;
}

/** Sends one request on a fresh call to `path` and decodes what comes back. */
function ask(path: string, body: Buffer): Answer {
  const call = Object.assign(new EventEmitter(), {
    written: [] as Buffer[],
    write(chunk: Buffer) {
      this.written.push(chunk);
      return true;
    },
    end() {},
  });
  const answer: Answer = {};
  call.on("error", (status: { code: number; details: string }) => {
    answer.status = status;
  });
  handlers().get(path)!(call);
  call.emit("data", body);
  const written = call.written[0];
  if (!written) return answer;
  const reader = new BinaryReader(written);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1) answer.host = reader.string();
    else if (field === 2) answer.original = reader.bytes();
    else if (field === 4) {
      const files = new BinaryReader(reader.bytes());
      answer.files = [];
      while (files.pos < files.len) {
        files.tag();
        answer.files.push(fromBinary(FileDescriptorProtoSchema, files.bytes()).name);
      }
    } else if (field === 6) {
      const list = new BinaryReader(reader.bytes());
      answer.services = [];
      while (list.pos < list.len) {
        list.tag();
        answer.services.push(...strings(list.bytes(), 1));
      }
    } else if (field === 7) {
      const error = new BinaryReader(reader.bytes());
      let code = 0;
      let message = "";
      while (error.pos < error.len) {
        const [number, type] = error.tag();
        if (number === 1) code = error.int32();
        else if (number === 2) message = error.string();
        else error.skip(type);
      }
      answer.error = { code, message };
    } else reader.skip(wireType);
  }
  return answer;
}

test("both versions list the services of the given files, and echo the host and the request", () => {
  for (const path of [V1, V1ALPHA]) {
    const body = request(7, "*");
    const answer = ask(path, body);
    assert.deepEqual(answer.services, ["tollgate.v1.TaskService", "grpc.health.v1.Health"], path);
    assert.equal(answer.host, "localhost");
    assert.deepEqual(Buffer.from(answer.original!), body);
  }
});

test("the file declaring a symbol comes with every file it imports", () => {
  for (const symbol of [
    "tollgate.v1.TaskService",
    "tollgate.v1.TaskService.Submit",
    "tollgate.v1.SubmitRequest",
    "tollgate.v1.SubmitRequest.user_id",
  ]) {
    assert.deepEqual(
      ask(V1, request(4, symbol)).files,
      ["tollgate/v1/task_service.proto", "google/protobuf/duration.proto", "google/protobuf/timestamp.proto"],
      symbol,
    );
  }
  assert.deepEqual(ask(V1ALPHA, request(3, "grpc/health/v1/health.proto")).files, ["grpc/health/v1/health.proto"]);
});

test("what is not there is NOT_FOUND in the answer; bytes that do not decode end the call INVALID_ARGUMENT", () => {
  assert.deepEqual(ask(V1, request(4, "tollgate.v1.Nothing")).error, {
    code: 5,
    message: "Symbol not found: tollgate.v1.Nothing",
  });
  assert.deepEqual(ask(V1, request(3, "nothing.proto")).error, {
    code: 5,
    message: "Proto file not found: nothing.proto",
  });
  assert.equal(ask(V1, request(6, "tollgate.v1.SubmitRequest")).error?.code, 5);
  const garbage = ask(V1, Buffer.from([0x0a, 0x7f, 0x01]));
  assert.equal(garbage.status?.code, 3);
  assert.equal(garbage.files, undefined);
});
