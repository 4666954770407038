// A Node load generator for TaskService.Submit, used by `npm run bench` when
// ghz (Go) is not installed. Several grpc-js clients, each with its own
// connection (`grpc.use_local_subchannel_pool`), so node:cluster spreads them
// over the server's workers; `concurrency` calls in flight in total.
//
//   node --import tsx bench/load.ts '<LoadSpec as JSON, payload in base64>'
//
// Prints one LoadResult as JSON.
import { create, toBinary } from "@bufbuild/protobuf";
import { Client, credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { SubmitRequestSchema } from "../gen/ts/tollgate/v1/task_service_pb.js";
import type { LoadResult, LoadSpec } from "./loadgen.js";

const PATH = "/tollgate.v1.TaskService/Submit";

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function main(): Promise<void> {
  const raw = JSON.parse(process.argv[2] ?? "{}") as Omit<LoadSpec, "payload"> & { payload?: string };
  const payload = raw.payload ? new Uint8Array(Buffer.from(raw.payload, "base64")) : new Uint8Array();
  const clients = Array.from(
    { length: raw.connections },
    () => new Client(raw.target, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 }),
  );
  await Promise.all(
    clients.map(
      (client) =>
        new Promise<void>((resolve, reject) =>
          client.waitForReady(Date.now() + 10_000, (error) => (error ? reject(error) : resolve())),
        ),
    ),
  );
  const serialize = (userId: string): Buffer => {
    const bytes = toBinary(SubmitRequestSchema, create(SubmitRequestSchema, { userId, payload }));
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
  const started = performance.now();
  const stopAt = started + 1000 * (raw.durationSeconds ?? raw.maxSeconds);
  const total = raw.durationSeconds === undefined ? (raw.total ?? 1000) : Infinity;
  let next = 0;
  let ok = 0;
  let count = 0;
  const errors: Record<string, number> = {};
  let latencies = new Float64Array(1 << 16);
  const call = (client: Client, n: number): Promise<void> => {
    const user = `${raw.prefix}${raw.users === undefined ? n : n % raw.users}`;
    const sent = performance.now();
    return new Promise((resolve) => {
      client.makeUnaryRequest(
        PATH,
        serialize,
        (bytes: Buffer) => bytes,
        user,
        new Metadata(),
        { deadline: Date.now() + 20_000 },
        (error: ServiceError | null) => {
          count++;
          if (error) {
            const name = status[error.code] ?? String(error.code);
            errors[name] = (errors[name] ?? 0) + 1;
          } else {
            if (ok === latencies.length) {
              const grown = new Float64Array(latencies.length * 2);
              grown.set(latencies);
              latencies = grown;
            }
            latencies[ok++] = performance.now() - sent;
          }
          resolve();
        },
      );
    });
  };
  const loop = async (k: number): Promise<void> => {
    const client = clients[k % clients.length]!;
    while (next < total && performance.now() < stopAt) await call(client, next++);
  };
  await Promise.all(Array.from({ length: raw.concurrency }, (_, k) => loop(k)));
  const seconds = (performance.now() - started) / 1000;
  for (const client of clients) client.close();
  const sorted = latencies.slice(0, ok).sort();
  const result: LoadResult = {
    generator: "node",
    count,
    ok,
    errors,
    seconds,
    rps: ok / seconds,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

await main();
