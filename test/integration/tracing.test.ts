// OpenTelemetry: a Submit carrying a W3C traceparent yields one trace whose
// spans cover the Submit, the task's wait in the queue and each attempt, even
// when the task is submitted to one instance and runs on another (the trace
// travels through Redis with the task). Spans are checked with an in-memory
// exporter. Without tracing, nothing of a trace is stored with a task.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { InMemorySpanExporter, SimpleSpanProcessor, BasicTracerProvider } from "@opentelemetry/sdk-trace-base";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { createTollgateClient } from "../../src/client/client.js";
import { SPAN, Tracing } from "../../src/tracing.js";
import { pollUntil } from "../support/expect.js";
import { usePrivateRedis } from "../support/fixture.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { keys } from "../support/store.js";
import { Disposition, TaskState } from "../../gen/ts/tollgate/v1/task_service_pb.js";

const FIXTURE_HANDLERS = fileURLToPath(new URL("../fixtures/handlers.ts", import.meta.url));
const CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN = "b7ad6b7169203331";
const TRACEPARENT = `00-${CALLER_TRACE}-${CALLER_SPAN}-01`;

const ctx = usePrivateRedis("tracing");

describe("traces: Submit on one instance, the wait and the attempts on another", () => {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const tracing = new Tracing(provider);
  /** One slot: a slow task fills it, so what else is submitted here runs on `b`. */
  let a: TestServer;
  let b: TestServer;
  let untraced: TestServer;

  before(async () => {
    const env = {
      TOLLGATE_HANDLER: FIXTURE_HANDLERS,
      TOLLGATE_MAX_ATTEMPTS: "3",
      TOLLGATE_RETRY_BACKOFF_MS: "200",
      // Retries within a few hundred ms, well inside the slow task's run.
      TOLLGATE_RATE_LIMITS: "10/1s",
    };
    a = await startTestServer(ctx.redis.url, { ...env, TOLLGATE_CONCURRENCY: "1" }, { tracing });
    b = await startTestServer(ctx.redis.url, env, { tracing });
    untraced = await startTestServer(ctx.redis.url, { ...env, TOLLGATE_CONCURRENCY: "0" });
  });
  after(async () => {
    await untraced?.close();
    await a?.close();
    await b?.close();
    await provider.shutdown();
  });

  const spansOf = (taskId: string): ReadableSpan[] =>
    exporter.getFinishedSpans().filter((span) => span.attributes["tollgate.task_id"] === taskId);
  const parentOf = (span: ReadableSpan): string | undefined => span.parentSpanContext?.spanId;

  test("one trace: Submit (child of the caller's span), the wait and every attempt (children of Submit)", async () => {
    const client = createTollgateClient({ baseUrl: a.address });
    // Fills a's one slot for 5 s.
    const slow = await client.submit({ userId: "slow", kind: "slow", payload: new TextEncoder().encode("5000") });
    assert.equal(slow.disposition, Disposition.STARTED);
    // flaky fails its first two attempts: three attempt spans. a has no free
    // slot, so it queues (due at once) and b's drainer claims it.
    const flaky = await client.submit({ userId: "tina", kind: "flaky" }, { headers: { traceparent: TRACEPARENT } });
    assert.equal(flaky.disposition, Disposition.QUEUED);
    const stored = await a.redis.hget(keys.forTask(flaky.taskId)!.task(flaky.taskId), "tp");
    assert.match(
      stored ?? "",
      new RegExp(`^00-${CALLER_TRACE}-[0-9a-f]{16}-01$`),
      "the Submit span's traceparent is stored",
    );

    await pollUntil(
      "the flaky task's three attempts to end",
      () => spansOf(flaky.taskId).filter((span) => span.name === SPAN.ATTEMPT).length === 3,
      { timeoutMs: 15_000 },
    );
    const spans = spansOf(flaky.taskId);
    for (const span of spans)
      assert.equal(span.spanContext().traceId, CALLER_TRACE, `${span.name} is in the caller's trace`);

    const submit = spans.find((span) => span.name === SPAN.SUBMIT);
    assert.ok(submit, "a Submit span");
    assert.equal(parentOf(submit), CALLER_SPAN, "Submit continues the caller's span");
    assert.equal(submit.attributes["tollgate.disposition"], "queued");
    assert.equal(submit.attributes["tollgate.user_id"], "tina");
    assert.equal(stored, `00-${CALLER_TRACE}-${submit.spanContext().spanId}-01`);

    const waits = spans.filter((span) => span.name === SPAN.WAIT);
    assert.equal(waits.length, 1, "one wait: before the first start");
    assert.equal(parentOf(waits[0]!), submit.spanContext().spanId);

    const attempts = spans
      .filter((span) => span.name === SPAN.ATTEMPT)
      .sort((x, y) => Number(x.attributes["tollgate.attempt"]) - Number(y.attributes["tollgate.attempt"]));
    assert.deepEqual(
      attempts.map((span) => [span.attributes["tollgate.attempt"], span.attributes["tollgate.outcome"]]),
      [
        [1, "retry-scheduled"],
        [2, "retry-scheduled"],
        [3, "succeeded"],
      ],
    );
    for (const attempt of attempts) {
      assert.equal(parentOf(attempt), submit.spanContext().spanId);
      assert.equal(attempt.attributes["tollgate.kind"], "flaky");
      assert.equal(attempt.attributes["tollgate.user_id"], "tina");
    }
    assert.equal(attempts[0]!.status.message, "flaky failure on attempt 1");

    // a's one slot was taken by the slow task throughout: the attempts ran on b.
    const slowAttempt = await pollUntil(
      "the slow task's attempt to end",
      () => spansOf(slow.taskId).find((span) => span.name === SPAN.ATTEMPT),
      { timeoutMs: 15_000 },
    );
    const endOf = (span: ReadableSpan): number => span.endTime[0] * 1_000 + span.endTime[1] / 1e6;
    assert.ok(
      endOf(attempts[2]!) < endOf(slowAttempt),
      "the third attempt ended while the slow task still held a's slot",
    );
  });

  test("a Submit without a traceparent starts a trace of its own; without tracing nothing is stored", async () => {
    const traced = await createTollgateClient({ baseUrl: b.address }).submit({ userId: "una" });
    const submit = await pollUntil("the Submit span", () =>
      spansOf(traced.taskId).find((span) => span.name === SPAN.SUBMIT),
    );
    assert.equal(parentOf(submit), undefined, "a root span");
    assert.equal(traced.disposition, Disposition.STARTED);
    const attempt = await pollUntil("the attempt span", () =>
      spansOf(traced.taskId).find((span) => span.name === SPAN.ATTEMPT),
    );
    assert.equal(parentOf(attempt), submit.spanContext().spanId);
    assert.equal(
      spansOf(traced.taskId).filter((span) => span.name === SPAN.WAIT).length,
      0,
      "no wait: it started at Submit",
    );

    const plain = await createTollgateClient({ baseUrl: untraced.address }).submit(
      { userId: "vera" },
      { headers: { traceparent: TRACEPARENT } },
    );
    const record = await untraced.redis.hgetall(keys.forTask(plain.taskId)!.task(plain.taskId));
    assert.equal(record.tp, undefined, "no traceparent stored without tracing");
    await pollUntil("vera's task to run on a traced instance", async () => {
      const task = (await createTollgateClient({ baseUrl: b.address }).getTask({ taskId: plain.taskId })).task;
      return task?.state === TaskState.SUCCEEDED;
    });
    const attempt2 = spansOf(plain.taskId).find((span) => span.name === SPAN.ATTEMPT);
    assert.ok(attempt2, "its attempt is still traced where it ran");
    assert.notEqual(
      attempt2.spanContext().traceId,
      CALLER_TRACE,
      "a trace of its own: nothing linked it to the caller",
    );
  });
});
