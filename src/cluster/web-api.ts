import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

/**
 * The API for browsers, on the primary's HTTP port: TaskService and
 * PolicyService over the
 * Connect protocol and gRPC-Web (connect-node), each call forwarded as gRPC
 * to the workers' port on this host. So a browser's call meets exactly what a
 * gRPC call meets (the workers' interceptors: auth, validation, the rate
 * policy) and there is one implementation of every method, not a second API.
 * The hop stays on this host: the workers' port is reached on loopback.
 */

/** The request headers a browser's call carries on to the workers: who calls, and its trace. */
const FORWARDED_HEADERS = ["authorization", "traceparent", "tracestate"] as const;

/** Where the workers serve gRPC; undefined until one serves. */
export interface GrpcTarget {
  readonly baseUrl: string;
  /** The workers' port speaks TLS: the loopback hop does too. */
  readonly tls: boolean;
}

/** How long a forwarded call may take when its caller set no deadline (WatchQueue streams have none). */
const UNARY_DEFAULT_TIMEOUT_MS = 30_000;

// The methods are looked up by name from the service descriptor, so their
// request and response messages are not typed here.
type ForwardOptions = ReturnType<typeof callOptions>;
type AnyMethod = (request: unknown, options: ForwardOptions) => Promise<unknown> & AsyncIterable<unknown>;
type AnyClient = Record<string, AnyMethod>;

/**
 * Routes every method of `services` to the workers at `target()`: where they
 * serve, undefined while none does yet, or why the API is off (a call then
 * fails UNAVAILABLE, saying so).
 */
export function webApiRoutes(
  target: () => GrpcTarget | string | undefined,
  services: readonly DescService[],
): (router: ConnectRouter) => void {
  // One HTTP/2 connection to the workers, made again if where they serve changes.
  let current: { readonly key: string; readonly clients: Map<DescService, AnyClient> } | undefined;
  const clientOf = (service: DescService): AnyClient => {
    const where = target();
    if (where === undefined) throw new ConnectError("no worker is serving yet; try again shortly", Code.Unavailable);
    if (typeof where === "string") throw new ConnectError(where, Code.Unavailable);
    const key = `${where.baseUrl} ${where.tls}`;
    if (current?.key !== key) {
      const transport = createGrpcTransport({
        baseUrl: where.baseUrl,
        // Our own port on loopback: its certificate names the host's public
        // name, not 127.0.0.1, and the hop never leaves the host.
        ...(where.tls ? { nodeOptions: { rejectUnauthorized: false } } : {}),
      });
      current = {
        key,
        clients: new Map(services.map((s) => [s, createClient(s, transport) as unknown as AnyClient])),
      };
    }
    return current.clients.get(service)!;
  };
  return (router) => {
    for (const service of services) {
      const implementation: Record<string, unknown> = {};
      for (const method of service.methods) {
        const name = method.localName;
        if (method.methodKind === "unary") {
          implementation[name] = async (request: unknown, context: HandlerContext) => {
            try {
              return await clientOf(service)[name]!(request, callOptions(context, true));
            } catch (error) {
              throw passOn(error);
            }
          };
        } else if (method.methodKind === "server_streaming") {
          implementation[name] = async function* (request: unknown, context: HandlerContext) {
            try {
              yield* clientOf(service)[name]!(request, callOptions(context, false));
            } catch (error) {
              throw passOn(error);
            }
          };
        }
        // A method that streams requests (WorkerService.Work) is not routed:
        // browsers cannot stream requests; it answers UNIMPLEMENTED here.
      }
      // Built from the descriptor above, so it has exactly the service's methods.
      router.service(service, implementation as never);
    }
  };
}

function callOptions(context: HandlerContext, unary: boolean) {
  const headers = new Headers();
  for (const name of FORWARDED_HEADERS) {
    const value = context.requestHeader.get(name);
    if (value !== null) headers.set(name, value);
  }
  const timeoutMs = context.timeoutMs() ?? (unary ? UNARY_DEFAULT_TIMEOUT_MS : undefined);
  return { headers, signal: context.signal, ...(timeoutMs === undefined ? {} : { timeoutMs }) };
}

/**
 * The workers' error as the browser's protocol should carry it: code,
 * message and details as they were, and of the metadata only what Tollgate
 * added (retry-after-ms); the gRPC hop's own headers (content-type, grpc-*)
 * would otherwise overwrite the browser protocol's.
 */
function passOn(error: unknown): ConnectError {
  const upstream = ConnectError.from(error);
  const metadata = new Headers();
  upstream.metadata.forEach((value, key) => {
    if (!HOP_HEADERS.test(key)) metadata.set(key, value);
  });
  const passed = new ConnectError(upstream.rawMessage, upstream.code, metadata, undefined, upstream.cause);
  // As received (google.rpc.RetryInfo among them), still encoded.
  passed.details.push(...upstream.details);
  return passed;
}

/** Headers of the gRPC hop itself, never passed on. */
const HOP_HEADERS =
  /^(content-type|content-length|content-encoding|date|grpc-.*|te|trailer|transfer-encoding|connection|keep-alive)$/i;
