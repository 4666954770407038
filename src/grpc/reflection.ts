import { toBinary, type DescEnum, type DescExtension, type DescFile, type DescMessage } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { status as GrpcCode, type Server, type ServerDuplexStream, type ServiceDefinition } from "@grpc/grpc-js";

/** The reflection services' names: v1, and v1alpha, which older clients (grpcurl before 1.8.8) still ask. */
const REFLECTION_SERVICES = ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];

/** One ServerReflectionRequest, decoded (the two versions' messages are the same on the wire). */
interface ReflectionRequest {
  readonly host: string;
  readonly kind:
    | {
        readonly case: "fileByFilename" | "fileContainingSymbol" | "allExtensionNumbersOfType" | "listServices";
        readonly value: string;
      }
    | { readonly case: "fileContainingExtension"; readonly type: string; readonly number: number }
    | undefined;
}

class ReflectionError extends Error {
  constructor(
    readonly code: GrpcCode,
    message: string,
  ) {
    super(message);
  }
}

/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha) from protobuf-es
 * file descriptors, so `buf curl` and grpcurl need no schema: the services
 * of the given files, each file by name, the file declaring a symbol (a
 * service, method, message, field, oneof, enum, enum value or extension),
 * each with the files it imports, transitively; and extensions by their
 * extendee. Encoded with protobuf-es' wire primitives, so serving it loads
 * no other protobuf library (@grpc/reflection parsed its own .proto files
 * with protobufjs at every worker start).
 */
export class ReflectionService {
  /** Each file's FileDescriptorProto, encoded once, by its name ("tollgate/v1/task_service.proto"). */
  private readonly encoded = new Map<string, Uint8Array>();
  private readonly files = new Map<string, DescFile>();
  private readonly symbols = new Map<string, DescFile>();
  /** Extendee's type name → extension number → the file declaring the extension. */
  private readonly extensions = new Map<string, Map<number, DescFile>>();
  private readonly services: string[] = [];

  constructor(files: readonly DescFile[]) {
    const visit = (file: DescFile): void => {
      const name = fileName(file);
      if (this.files.has(name)) return;
      this.files.set(name, file);
      this.encoded.set(name, toBinary(FileDescriptorProtoSchema, file.proto));
      this.index(file);
      file.dependencies.forEach(visit);
    };
    files.forEach(visit);
  }

  /** Serves both versions on `server`. */
  addToServer(server: Server): void {
    for (const service of REFLECTION_SERVICES) {
      const definition: ServiceDefinition = {
        ServerReflectionInfo: {
          path: `/${service}/ServerReflectionInfo`,
          originalName: "serverReflectionInfo",
          requestStream: true,
          responseStream: true,
          // Bytes both ways: requests are decoded, and answers encoded, below.
          requestSerialize: (bytes: Buffer) => bytes,
          requestDeserialize: (bytes: Buffer) => bytes,
          responseSerialize: (bytes: Buffer) => bytes,
          responseDeserialize: (bytes: Buffer) => bytes,
        },
      };
      server.addService(definition, { ServerReflectionInfo: this.serve });
    }
  }

  private readonly serve = (call: ServerDuplexStream<Buffer, Buffer>): void => {
    call.on("data", (bytes: Buffer) => {
      let request: ReflectionRequest;
      try {
        request = decodeRequest(bytes);
      } catch (error) {
        call.emit("error", {
          code: GrpcCode.INVALID_ARGUMENT,
          details: `the request is not a valid ServerReflectionRequest: ${(error as Error).message}`,
        });
        return;
      }
      call.write(this.answer(request, bytes));
    });
    call.on("end", () => call.end());
  };

  /** The ServerReflectionResponse to one request, echoing it. */
  private answer(request: ReflectionRequest, original: Uint8Array): Buffer {
    const writer = new BinaryWriter();
    writer.tag(1, WireType.LengthDelimited).string(request.host);
    writer.tag(2, WireType.LengthDelimited).bytes(original);
    try {
      const kind = request.kind;
      switch (kind?.case) {
        case "fileByFilename":
          this.writeFiles(writer, this.files.get(kind.value), `Proto file not found: ${kind.value}`);
          break;
        case "fileContainingSymbol":
          this.writeFiles(writer, this.symbols.get(kind.value), `Symbol not found: ${kind.value}`);
          break;
        case "fileContainingExtension":
          this.writeFiles(
            writer,
            this.extensions.get(kind.type)?.get(kind.number),
            `Extension not found for symbol ${kind.type} at field ${kind.number}`,
          );
          break;
        case "allExtensionNumbersOfType": {
          const numbers = this.extensions.get(kind.value);
          if (!numbers) throw new ReflectionError(GrpcCode.NOT_FOUND, `Extensions not found for symbol ${kind.value}`);
          const response = new BinaryWriter().tag(1, WireType.LengthDelimited).string(kind.value);
          for (const number of numbers.keys()) response.tag(2, WireType.Varint).int32(number);
          writer.tag(5, WireType.LengthDelimited).bytes(response.finish());
          break;
        }
        case "listServices": {
          const response = new BinaryWriter();
          for (const name of this.services) {
            response
              .tag(1, WireType.LengthDelimited)
              .bytes(new BinaryWriter().tag(1, WireType.LengthDelimited).string(name).finish());
          }
          writer.tag(6, WireType.LengthDelimited).bytes(response.finish());
          break;
        }
        default:
          throw new ReflectionError(GrpcCode.UNIMPLEMENTED, "Unimplemented method for request: none given");
      }
    } catch (error) {
      if (!(error instanceof ReflectionError)) throw error;
      const response = new BinaryWriter()
        .tag(1, WireType.Varint)
        .int32(error.code)
        .tag(2, WireType.LengthDelimited)
        .string(error.message);
      writer.tag(7, WireType.LengthDelimited).bytes(response.finish());
    }
    const bytes = writer.finish();
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** A FileDescriptorResponse: `file` and every file it imports, transitively. */
  private writeFiles(writer: BinaryWriter, file: DescFile | undefined, notFound: string): void {
    if (!file) throw new ReflectionError(GrpcCode.NOT_FOUND, notFound);
    const response = new BinaryWriter();
    const seen = new Set<string>();
    const add = (each: DescFile): void => {
      const name = fileName(each);
      if (seen.has(name)) return;
      seen.add(name);
      response.tag(1, WireType.LengthDelimited).bytes(this.encoded.get(name)!);
      each.dependencies.forEach(add);
    };
    add(file);
    writer.tag(4, WireType.LengthDelimited).bytes(response.finish());
  }

  private index(file: DescFile): void {
    const symbol = (name: string): void => {
      if (!this.symbols.has(name)) this.symbols.set(name, file);
    };
    const extension = (ext: DescExtension): void => {
      symbol(ext.typeName);
      const numbers = this.extensions.get(ext.extendee.typeName) ?? new Map<number, DescFile>();
      this.extensions.set(ext.extendee.typeName, numbers);
      numbers.set(ext.number, file);
    };
    // Enum values are scoped beside their enum, as protobuf scopes them.
    const enumeration = (desc: DescEnum, scope: string): void => {
      symbol(desc.typeName);
      for (const value of desc.values) symbol(`${scope}${value.name}`);
    };
    const message = (desc: DescMessage): void => {
      symbol(desc.typeName);
      for (const field of desc.fields) symbol(`${desc.typeName}.${field.name}`);
      for (const oneof of desc.oneofs) symbol(`${desc.typeName}.${oneof.name}`);
      for (const nested of desc.nestedMessages) message(nested);
      for (const nested of desc.nestedEnums) enumeration(nested, `${desc.typeName}.`);
      desc.nestedExtensions.forEach(extension);
    };
    const scope = file.proto.package === "" ? "" : `${file.proto.package}.`;
    for (const service of file.services) {
      symbol(service.typeName);
      if (!this.services.includes(service.typeName)) this.services.push(service.typeName);
      for (const method of service.methods) symbol(`${service.typeName}.${method.name}`);
    }
    file.messages.forEach(message);
    for (const desc of file.enums) enumeration(desc, scope);
    file.extensions.forEach(extension);
  }
}

/** The name a descriptor calls its file, with ".proto". */
function fileName(file: DescFile): string {
  return file.proto.name;
}

function decodeRequest(bytes: Uint8Array): ReflectionRequest {
  const reader = new BinaryReader(bytes);
  let host = "";
  let kind: ReflectionRequest["kind"];
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field !== 2 && field <= 7 && wireType !== WireType.LengthDelimited) {
      throw new Error(`field ${field} has wire type ${wireType}, not length-delimited`);
    }
    switch (field) {
      case 1:
        host = reader.string();
        break;
      case 3:
        kind = { case: "fileByFilename", value: reader.string() };
        break;
      case 4:
        kind = { case: "fileContainingSymbol", value: reader.string() };
        break;
      case 5: {
        const nested = new BinaryReader(reader.bytes());
        let type = "";
        let number = 0;
        while (nested.pos < nested.len) {
          const [nestedField, nestedWireType] = nested.tag();
          if (nestedField === 1) type = nested.string();
          else if (nestedField === 2) number = nested.int32();
          else nested.skip(nestedWireType);
        }
        kind = { case: "fileContainingExtension", type, number };
        break;
      }
      case 6:
        kind = { case: "allExtensionNumbersOfType", value: reader.string() };
        break;
      case 7:
        kind = { case: "listServices", value: reader.string() };
        break;
      default:
        reader.skip(wireType);
    }
  }
  return { host, kind };
}
