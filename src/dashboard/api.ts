// The dashboard's API clients: the generated TaskService client over the
// Connect protocol, to the page's own origin (the HTTP port that served it),
// with the API key the user gave, if any, kept for this tab only.
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { PolicyService } from "../../gen/ts/tollgate/v1/policy_service_pb.js";
import { TaskService } from "../../gen/ts/tollgate/v1/task_service_pb.js";
import { WorkerService } from "../../gen/ts/tollgate/v1/worker_service_pb.js";

const KEY_STORAGE = "tollgate.apiKey";

export function apiKey(): string {
  return sessionStorage.getItem(KEY_STORAGE) ?? "";
}

export function setApiKey(key: string): void {
  if (key === "") sessionStorage.removeItem(KEY_STORAGE);
  else sessionStorage.setItem(KEY_STORAGE, key);
}

const withKey: Interceptor = (next) => (request) => {
  const key = apiKey();
  if (key !== "") request.header.set("authorization", `Bearer ${key}`);
  return next(request);
};

const transport = createConnectTransport({ baseUrl: window.location.origin, interceptors: [withKey] });

export const tasks: Client<typeof TaskService> = createClient(TaskService, transport);

/** Plans and users' policies: admin keys only. */
export const policies: Client<typeof PolicyService> = createClient(PolicyService, transport);

/** The workers connected to every host (ListWorkers): admin and worker keys. */
export const workers: Client<typeof WorkerService> = createClient(WorkerService, transport);

/** "PERMISSION_DENIED: …" for a ConnectError, the message for anything else. */
export function describeError(error: unknown): string {
  const connect = ConnectError.from(error);
  return `${Code[connect.code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase()}: ${connect.rawMessage}`;
}

export function isUnauthenticated(error: unknown): boolean {
  return error instanceof ConnectError && error.code === Code.Unauthenticated;
}

export function isPermissionDenied(error: unknown): boolean {
  return error instanceof ConnectError && error.code === Code.PermissionDenied;
}
