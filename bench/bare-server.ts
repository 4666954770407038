// The ceiling: a node:cluster of plain grpc-js servers answering TaskService's
// Submit with an empty SubmitResponse, nothing else (no interceptor, Redis,
// metrics or logging). Same service definition, same protobuf-es
// (de)serialization and same worker count as `tollgate serve`, so what
// Tollgate adds on top of it is what `npm run bench` measures.
//
//   node --import tsx bench/bare-server.ts [workers]
//
// Prints one line `{"msg":"serving","port":N,"workers":W}` once every worker
// listens on the shared port (0 picks a free one; BARE_PORT sets it).
// SIGTERM stops the workers and the primary.
import cluster from "node:cluster";
import { availableParallelism } from "node:os";
import { create } from "@bufbuild/protobuf";
import { Server, ServerCredentials, type sendUnaryData, type ServerUnaryCall } from "@grpc/grpc-js";
import { grpcServiceDefinition } from "../src/grpc/service-definition.js";
import { SubmitResponseSchema, TaskService, type SubmitResponse } from "../gen/ts/tollgate/v1/task_service_pb.js";

const workers = Number(process.argv[2] ?? availableParallelism());
const port = Number(process.env.BARE_PORT ?? "0");

if (cluster.isPrimary) {
  let ready = 0;
  let boundPort = 0;
  const children = Array.from({ length: workers }, () => cluster.fork());
  for (const child of children) {
    child.on("message", (message: { port?: number }) => {
      if (typeof message.port !== "number") return;
      boundPort = message.port;
      if (++ready === workers) console.log(JSON.stringify({ msg: "serving", port: boundPort, workers }));
    });
  }
  const stop = (): void => {
    for (const child of children) if (!child.isDead()) child.process.kill("SIGTERM");
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  cluster.on("exit", () => {
    if (children.every((child) => child.isDead())) process.exit(0);
  });
} else {
  const empty = create(SubmitResponseSchema);
  const server = new Server();
  server.addService(grpcServiceDefinition(TaskService), {
    submit: (_call: ServerUnaryCall<unknown, SubmitResponse>, callback: sendUnaryData<SubmitResponse>) =>
      callback(null, empty),
  });
  server.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (error, bound) => {
    if (error) {
      console.error(error.message);
      process.exit(1);
    }
    process.send?.({ port: bound });
  });
  process.on("SIGTERM", () => server.tryShutdown(() => process.exit(0)));
  process.on("disconnect", () => process.exit(0));
}
