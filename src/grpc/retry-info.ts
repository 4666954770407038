import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { AnySchema, DurationSchema } from "@bufbuild/protobuf/wkt";

/**
 * google.rpc.Status carrying one google.rpc.RetryInfo, as gRPC clients expect
 * it in the `grpc-status-details-bin` trailer. The two messages are small and
 * stable, so they are encoded here by field number rather than by vendoring
 * googleapis' protos (whose Go copies would clash with genproto's).
 */
export const RETRY_INFO_TYPE = "google.rpc.RetryInfo";

function encodeRetryInfo(retryAfterMs: number): Uint8Array {
  const ms = Math.max(0, Math.ceil(retryAfterMs));
  const delay = create(DurationSchema, {
    seconds: BigInt(Math.floor(ms / 1000)),
    nanos: (ms % 1000) * 1_000_000,
  });
  // RetryInfo { google.protobuf.Duration retry_delay = 1; }
  return new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(toBinary(DurationSchema, delay)).finish();
}

/** The retry delay in ms from RetryInfo bytes (an Any's value). */
export function decodeRetryInfo(bytes: Uint8Array): number | undefined {
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [fieldNo, wireType] = reader.tag();
    if (fieldNo === 1 && wireType === WireType.LengthDelimited) {
      const delay = fromBinary(DurationSchema, reader.bytes());
      return Number(delay.seconds) * 1000 + Math.round(delay.nanos / 1_000_000);
    }
    reader.skip(wireType);
  }
  return undefined;
}

/** google.rpc.Status { int32 code = 1; string message = 2; repeated Any details = 3; } */
export function encodeStatusWithRetryInfo(code: number, message: string, retryAfterMs: number): Uint8Array {
  const detail = create(AnySchema, {
    typeUrl: `type.googleapis.com/${RETRY_INFO_TYPE}`,
    value: encodeRetryInfo(retryAfterMs),
  });
  return new BinaryWriter()
    .tag(1, WireType.Varint)
    .int32(code)
    .tag(2, WireType.LengthDelimited)
    .string(message)
    .tag(3, WireType.LengthDelimited)
    .bytes(toBinary(AnySchema, detail))
    .finish();
}
