import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { RETRY_INFO_TYPE, decodeRetryInfo } from "../../src/grpc/retry-info.js";

/** Awaits a call that must fail with `code`; returns the ConnectError. */
export async function expectCode(call: Promise<unknown>, code: Code, what = "the call"): Promise<ConnectError> {
  let result: unknown;
  try {
    result = await call;
  } catch (error) {
    const connectError = ConnectError.from(error);
    assert.equal(
      Code[connectError.code],
      Code[code],
      `${what}: expected ${Code[code]}, got ${Code[connectError.code]}: ${connectError.rawMessage}`,
    );
    return connectError;
  }
  assert.fail(`${what}: expected ${Code[code]}, but it succeeded with ${JSON.stringify(result, bigintSafe)}`);
}

function bigintSafe(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? String(value) : value;
}

export interface RetryHint {
  /** From google.rpc.RetryInfo in the status details. */
  readonly retryInfoMs: number;
  /** From the `retry-after-ms` trailer. */
  readonly trailerMs: number;
}

/**
 * The retry delay a RESOURCE_EXHAUSTED error carries, asserting that it has
 * both google.rpc.RetryInfo in its details and a `retry-after-ms` trailer, and
 * that the two agree.
 */
export function retryHint(error: ConnectError): RetryHint {
  const details = error.details.filter(
    (detail): detail is { type: string; value: Uint8Array } => "type" in detail && "value" in detail,
  );
  const retryInfo = details.find((detail) => detail.type === RETRY_INFO_TYPE);
  assert.ok(
    retryInfo,
    `expected a ${RETRY_INFO_TYPE} detail, got [${details.map((detail) => detail.type).join(", ")}]`,
  );
  const retryInfoMs = decodeRetryInfo(retryInfo.value);
  assert.ok(retryInfoMs !== undefined, "RetryInfo has no retry_delay");
  const trailer = error.metadata.get("retry-after-ms");
  assert.ok(
    trailer !== null,
    `expected a retry-after-ms trailer, got metadata ${[...error.metadata.keys()].join(", ")}`,
  );
  assert.match(trailer, /^\d+$/, "retry-after-ms is a whole number of milliseconds");
  const trailerMs = Number(trailer);
  assert.equal(trailerMs, retryInfoMs, "the retry-after-ms trailer and RetryInfo agree");
  return { retryInfoMs, trailerMs };
}

/**
 * Polls `probe` every `intervalMs` until it returns a truthy value, and
 * returns that value; a probe that throws counts as not yet. Fails after
 * `timeoutMs`, naming `what` and the last answer. The one way tests wait for
 * something to happen: timeouts are generous (a loaded CI machine), and a
 * test that needs a bound asserts it separately, saying what it guards.
 */
export async function pollUntil<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  { timeoutMs = 10_000, intervalMs = 25 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
      last = value;
    } catch (error) {
      last = error;
    }
    if (Date.now() >= deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      assert.fail(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${detail})`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * A poll check that passes once `check` has passed `times` times in a row:
 * on a cluster each probe lands on some worker, so one pass says little.
 */
export function inARow(times: number, check: () => boolean | Promise<boolean>): () => Promise<boolean> {
  let passes = 0;
  return async () => {
    passes = (await check()) ? passes + 1 : 0;
    return passes >= times;
  };
}
