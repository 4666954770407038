import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { MethodDefinition, ServiceDefinition } from "@grpc/grpc-js";
import {
  HealthCheckRequestSchema,
  HealthCheckResponse_ServingStatusSchema,
  HealthCheckResponseSchema,
  HealthListRequestSchema,
  HealthListResponseSchema,
} from "../../gen/ts/grpc/health/v1/health_pb.js";

// grpc-health-check's module, at its top level, has @grpc/proto-loader parse
// its health.proto (with protobufjs) for the service definition it serves:
// about 60 ms of every worker's start (issue 16). In the bundle only,
// scripts/build.js hands it this module as @grpc/proto-loader instead: the
// same definition, built from the protobuf-es descriptors a worker loads
// anyway. Objects as proto-loader gives them with grpc-health-check's options
// (keepCase, enums as their names, defaults set);
// test/unit/health-definition.test.ts compares the two.

/** A status as `enums: String` has it: its name, or its number when it has none. */
type Status = string | number;

interface CheckRequest {
  service: string;
}
interface CheckResponse {
  status: Status;
}
interface ListResponse {
  statuses: Record<string, CheckResponse>;
}

const statusValues = HealthCheckResponse_ServingStatusSchema.values;
const statusNumbers = new Map(statusValues.map((value) => [value.name, value.number]));
const statusNames = new Map(statusValues.map((value) => [value.number, value.name]));

/** Like protobufjs' fromObject: a name it does not know is the default, UNKNOWN. */
function statusNumber(status: Status): number {
  return typeof status === "number" ? status : (statusNumbers.get(status) ?? 0);
}

function statusName(status: number): Status {
  return statusNames.get(status) ?? status;
}

/** grpc-js writes what a serializer returns with Buffer's methods; a view, not a copy. */
function buffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

// A request that does not decode throws: grpc-js answers it INTERNAL, as it
// does when protobufjs throws (protobuf-es refuses some bytes protobufjs
// read leniently: a truncated field, invalid UTF-8).
const checkRequest = {
  requestSerialize: (request: CheckRequest) =>
    buffer(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: request.service }))),
  requestDeserialize: (bytes: Buffer): CheckRequest => ({
    service: fromBinary(HealthCheckRequestSchema, bytes, { readUnknownFields: false }).service,
  }),
};

const checkResponse = {
  responseSerialize: (response: CheckResponse) =>
    buffer(
      toBinary(HealthCheckResponseSchema, create(HealthCheckResponseSchema, { status: statusNumber(response.status) })),
    ),
  responseDeserialize: (bytes: Buffer): CheckResponse => ({
    status: statusName(fromBinary(HealthCheckResponseSchema, bytes).status),
  }),
};

const check: MethodDefinition<CheckRequest, CheckResponse> = {
  path: "/grpc.health.v1.Health/Check",
  requestStream: false,
  responseStream: false,
  originalName: "check",
  ...checkRequest,
  ...checkResponse,
};

const watch: typeof check = {
  ...check,
  path: "/grpc.health.v1.Health/Watch",
  responseStream: true,
  originalName: "watch",
};

const list: MethodDefinition<object, ListResponse> = {
  path: "/grpc.health.v1.Health/List",
  requestStream: false,
  responseStream: false,
  originalName: "list",
  requestSerialize: () => buffer(toBinary(HealthListRequestSchema, create(HealthListRequestSchema))),
  requestDeserialize: (bytes: Buffer) => {
    fromBinary(HealthListRequestSchema, bytes, { readUnknownFields: false });
    return {};
  },
  responseSerialize: (response: ListResponse) => {
    const statuses = Object.entries(response.statuses).map(([service, { status }]) => [
      service,
      { status: statusNumber(status) },
    ]);
    return buffer(
      toBinary(HealthListResponseSchema, create(HealthListResponseSchema, { statuses: Object.fromEntries(statuses) })),
    );
  },
  responseDeserialize: (bytes: Buffer) => {
    const { statuses } = fromBinary(HealthListResponseSchema, bytes);
    return {
      statuses: Object.fromEntries(
        Object.entries(statuses).map(([service, { status }]) => [service, { status: statusName(status) }]),
      ),
    };
  },
};

/** grpc.health.v1.Health as proto-loader defines it: keyed by method name, each with its lower-camel originalName. */
const health: ServiceDefinition = { Check: check, Watch: watch, List: list };

/**
 * What grpc-health-check calls: `loadSync("health/v1/health.proto", options)`.
 * Any other file throws, so a grpc-health-check that loads something else
 * fails at once rather than serving the wrong definition.
 */
export function loadSync(file: string): { readonly "grpc.health.v1.Health": ServiceDefinition } {
  if (file !== "health/v1/health.proto") {
    throw new Error(
      `tollgate's bundled @grpc/proto-loader (src/grpc/health-definition.ts) knows only grpc.health.v1, not ${file}`,
    );
  }
  return { "grpc.health.v1.Health": health };
}
