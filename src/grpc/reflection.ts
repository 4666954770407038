import { toBinary, type DescFile } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { ReflectionService } from "@grpc/reflection";

/**
 * Server reflection from protobuf-es file descriptors, so `buf curl` and
 * grpcurl need no schema. @grpc/reflection indexes every file descriptor it is
 * given, whatever the package definition's keys, so one entry per file is
 * enough.
 */
export function reflectionService(files: readonly DescFile[]): ReflectionService {
  const all = new Map<string, DescFile>();
  const visit = (file: DescFile): void => {
    if (all.has(file.name)) return;
    all.set(file.name, file);
    file.dependencies.forEach(visit);
  };
  files.forEach(visit);
  const definition: Record<string, { fileDescriptorProtos: Buffer[] }> = {};
  for (const [name, file] of all) {
    definition[name] = { fileDescriptorProtos: [Buffer.from(toBinary(FileDescriptorProtoSchema, file.proto))] };
  }
  // Typed for proto-loader's package definition, of which it reads only
  // fileDescriptorProtos.
  return new ReflectionService(definition as unknown as ConstructorParameters<typeof ReflectionService>[0]);
}
