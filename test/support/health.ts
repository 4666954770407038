import type { Client } from "@connectrpc/connect";
import { createHealthClient } from "../../src/client/client.js";
import { type Health, HealthCheckResponse_ServingStatus } from "../../gen/ts/grpc/health/v1/health_pb.js";

/** A grpc.health.v1 client for a server at `address` ("http://host:port"). */
export function healthClient(address: string): Client<typeof Health> {
  return createHealthClient({ baseUrl: address });
}

/** The status name Check reports for `service` ("" is the whole server). */
export async function checkStatus(client: Client<typeof Health>, service = ""): Promise<string> {
  const response = await client.check({ service }, { timeoutMs: 5_000 });
  return HealthCheckResponse_ServingStatus[response.status] ?? String(response.status);
}
