import { readFileSync } from "node:fs";
import { createClient, ConnectError, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { decodeRetryInfo, RETRY_INFO_TYPE } from "../grpc/retry-info.js";
import { Health } from "../../gen/ts/grpc/health/v1/health_pb.js";
import { PolicyService } from "../../gen/ts/tollgate/v1/policy_service_pb.js";
import { TaskService, type SubmitResponse, type WatchQueueResponse } from "../../gen/ts/tollgate/v1/task_service_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { SubmitRequestSchema } from "../../gen/ts/tollgate/v1/task_service_pb.js";

export interface TollgateClientOptions {
  /** "http://host:50051", or "https://host:50051" for TLS. */
  readonly baseUrl: string;
  /** Sent as `authorization: Bearer <key>`. */
  readonly apiKey?: string;
  /** PEM contents or file paths; ca checks the server, cert and key are for mutual TLS. */
  readonly tls?: { readonly ca?: string | Buffer; readonly cert?: string | Buffer; readonly key?: string | Buffer };
}

export type TollgateClient = Client<typeof TaskService>;
export type SubmitInit = MessageInitShape<typeof SubmitRequestSchema>;

function pem(value: string | Buffer | undefined): string | Buffer | undefined {
  if (value === undefined || Buffer.isBuffer(value) || value.includes("-----BEGIN")) return value;
  return readFileSync(value);
}

/**
 * The gRPC transport (@connectrpc/connect-node, HTTP/2) every client here
 * shares: the API key as a bearer token on each call, and TLS from PEM
 * contents or files. Exported for the worker (worker.ts).
 */
export function createTransport(options: TollgateClientOptions): Transport {
  const auth: Interceptor = (next) => (request) => {
    request.header.set("authorization", `Bearer ${options.apiKey}`);
    return next(request);
  };
  const tls = options.tls;
  return createGrpcTransport({
    baseUrl: options.baseUrl,
    interceptors: options.apiKey ? [auth] : [],
    nodeOptions: tls ? { ca: pem(tls.ca), cert: pem(tls.cert), key: pem(tls.key) } : {},
  });
}

/** The generated, typed TaskService client over gRPC (@connectrpc/connect-node). */
export function createTollgateClient(options: TollgateClientOptions): TollgateClient {
  return createClient(TaskService, createTransport(options));
}

/** PolicyService (admin keys only) on the same server. */
export function createPolicyClient(options: TollgateClientOptions): Client<typeof PolicyService> {
  return createClient(PolicyService, createTransport(options));
}

/** grpc.health.v1 on the same server. */
export function createHealthClient(options: TollgateClientOptions): Client<typeof Health> {
  return createClient(Health, createTransport(options));
}

/** The server's advice on when to retry a RESOURCE_EXHAUSTED, in ms. */
export function retryAfterMs(error: unknown): number | undefined {
  if (!(error instanceof ConnectError)) return undefined;
  for (const detail of error.details) {
    if ("type" in detail && detail.type === RETRY_INFO_TYPE) return decodeRetryInfo(detail.value);
  }
  const trailer = error.metadata.get("retry-after-ms");
  return trailer === null ? undefined : Number(trailer);
}

/**
 * Submits many tasks with at most `concurrency` calls in flight; answers come
 * back in the order of the requests. The first error rejects the whole batch
 * (calls already sent have been answered or are in flight).
 */
export async function submitMany(
  client: TollgateClient,
  requests: readonly SubmitInit[],
  concurrency = 16,
): Promise<SubmitResponse[]> {
  const answers: SubmitResponse[] = new Array(requests.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < requests.length) {
      const index = next++;
      answers[index] = await client.submit(requests[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, requests.length)) }, worker));
  return answers;
}

/**
 * Submits the tasks, then yields the user's queue progress until it drains.
 * All requests must be for one user.
 */
export async function* submitAndWatch(
  client: TollgateClient,
  requests: readonly SubmitInit[],
  options: { readonly concurrency?: number; readonly signal?: AbortSignal } = {},
): AsyncGenerator<WatchQueueResponse, SubmitResponse[], undefined> {
  const userId = requests[0]?.userId ?? "";
  if (requests.some((request) => (request.userId ?? "") !== userId)) {
    throw new Error("submitAndWatch: every request must be for the same user");
  }
  const answers = await submitMany(client, requests, options.concurrency);
  yield* client.watchQueue({ userId }, { signal: options.signal });
  return answers;
}
