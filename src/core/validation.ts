import { invalidArgument } from "./service-error.js";
import { isTaskId } from "./task-id.js";

const MAX_USER_ID_BYTES = 128;
const MAX_IDEMPOTENCY_KEY_BYTES = 128;
const MAX_KIND_BYTES = 64;

// Control characters (C0, DEL, C1) and line/paragraph separators: they break
// logs and terminals and have no place in an identifier.
const FORBIDDEN_CHARACTERS = /[\p{Cc}\p{Zl}\p{Zp}]/u;
const KIND_PATTERN = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
/** How far ahead Submit's not_before may be: 30 days. */
const MAX_DELAY_MS = 30 * 24 * 3_600_000;

function checkIdentifier(field: string, value: string, maxBytes: number): void {
  const bytes = Buffer.byteLength(value, "utf8");
  if (bytes > maxBytes) {
    throw invalidArgument(field, `is ${bytes} bytes long; the limit is ${maxBytes} bytes of UTF-8`);
  }
  const forbidden = FORBIDDEN_CHARACTERS.exec(value);
  if (forbidden) {
    const code = forbidden[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0");
    throw invalidArgument(field, `contains the control character U+${code} at index ${forbidden.index}`);
  }
}

export function checkUserId(userId: string, field = "user_id"): void {
  if (userId === "") throw invalidArgument(field, "is required");
  checkIdentifier(field, userId, MAX_USER_ID_BYTES);
}

export function checkIdempotencyKey(key: string): void {
  checkIdentifier("idempotency_key", key, MAX_IDEMPOTENCY_KEY_BYTES);
}

export function checkPayload(payload: Uint8Array, maxBytes: number): void {
  if (payload.byteLength > maxBytes) {
    throw invalidArgument("payload", `is ${payload.byteLength} bytes; the limit is ${maxBytes} bytes`);
  }
}

/** A kind is a name: letters, digits and _.- (so never a space or comma, which lua/includes/parked relies on). */
export function checkKindName(kind: string, field = "kind"): void {
  if (kind === "") return;
  if (Buffer.byteLength(kind) > MAX_KIND_BYTES || !KIND_PATTERN.test(kind)) {
    throw invalidArgument(field, `"${kind.slice(0, MAX_KIND_BYTES)}" is not a handler name`);
  }
}

/** A kind some handler or connected worker runs (with TOLLGATE_REQUIRE_KNOWN_KINDS). */
export function checkKnownKind(kind: string, knownKinds: ReadonlySet<string>): void {
  if (kind === "" || knownKinds.has(kind)) return;
  const known = [...knownKinds].sort();
  throw invalidArgument(
    "kind",
    known.length === 0
      ? `no handler or connected worker runs kind "${kind}"; this server runs every task with its default handler (leave kind empty)`
      : `no handler or connected worker runs kind "${kind}"; known: ${known.join(", ")}`,
  );
}

/** Most units one task may cost (proto uint32); a window's limit bounds it further, in the store. */
const MAX_COST = 1_000_000_000;

/** Submit's cost: 0 (unset) means 1. Returns the cost. */
export function checkCost(cost: number): number {
  if (!Number.isSafeInteger(cost) || cost < 0 || cost > MAX_COST) {
    throw invalidArgument("cost", `must be a whole number from 1 to ${MAX_COST} (0 or unset: 1)`);
  }
  return cost === 0 ? 1 : cost;
}

export function checkTaskId(taskId: string): void {
  if (taskId === "") throw invalidArgument("task_id", "is required");
  if (!isTaskId(taskId))
    throw invalidArgument(
      "task_id",
      "is not a Tollgate task id (a partition number, a dot and 22 characters of base64url, as Submit returns it)",
    );
}

/** The highest priority a task may have (lua/includes/priority counts each level up to it). */
export const MAX_PRIORITY = 9;

/** Checks Submit's priority and returns it. */
export function checkPriority(priority: number): number {
  if (!Number.isSafeInteger(priority) || priority < 0 || priority > MAX_PRIORITY) {
    throw invalidArgument("priority", `is ${priority}; use 0 (the default) to ${MAX_PRIORITY}, higher first`);
  }
  return priority;
}

/**
 * Checks Submit's not_before and start_by (ms, undefined when unset) against
 * `now` and returns the delay to store: undefined for none (unset or not in
 * the future).
 */
export function checkSchedule(
  notBefore: number | undefined,
  startBy: number | undefined,
  now: number,
): number | undefined {
  if (notBefore !== undefined && !Number.isFinite(notBefore))
    throw invalidArgument("not_before", "is not a valid time");
  if (startBy !== undefined && !Number.isFinite(startBy)) throw invalidArgument("start_by", "is not a valid time");
  if (notBefore !== undefined && notBefore - now > MAX_DELAY_MS) {
    throw invalidArgument(
      "not_before",
      `is ${new Date(notBefore).toISOString()}, more than 30 days ahead; the limit is 30 days from now`,
    );
  }
  if (startBy !== undefined) {
    if (startBy <= now) throw invalidArgument("start_by", `is ${new Date(startBy).toISOString()}, already past`);
    if (notBefore !== undefined && startBy < notBefore) {
      throw invalidArgument("start_by", "is earlier than not_before; the task could never start");
    }
  }
  return notBefore !== undefined && notBefore > now ? notBefore : undefined;
}

/** Most tasks one worker may ask to run at once. */
const MAX_WORKER_CONCURRENCY = 1000;
const MAX_WORKER_KINDS = 100;
const MAX_WORKER_NAME_BYTES = 128;

/** A worker's hello (WorkerService): at least one kind, each a kind name and not empty; a concurrency in range. */
export function checkWorkerHello(hello: {
  readonly kinds: readonly string[];
  readonly concurrency: number;
  readonly name: string;
}): void {
  if (hello.kinds.length === 0) throw invalidArgument("hello.kinds", "name at least one kind this worker runs");
  if (hello.kinds.length > MAX_WORKER_KINDS) {
    throw invalidArgument("hello.kinds", `${hello.kinds.length} kinds; the limit is ${MAX_WORKER_KINDS}`);
  }
  hello.kinds.forEach((kind, index) => {
    const field = `hello.kinds[${index}]`;
    if (kind === "") throw invalidArgument(field, "is empty; tasks of the empty kind run in the server's own handler");
    checkKindName(kind, field);
  });
  if (hello.concurrency < 1 || hello.concurrency > MAX_WORKER_CONCURRENCY) {
    throw invalidArgument("hello.concurrency", `${hello.concurrency} is not 1 to ${MAX_WORKER_CONCURRENCY}`);
  }
  checkIdentifier("hello.name", hello.name, MAX_WORKER_NAME_BYTES);
}
