// Submit is unary: one request message, then the end of the request stream.
// A misbehaving client (a raw HTTP/2 client, or a grpc-js client calling the
// Submit path as a streaming method) can send more; such a call ends in an
// error status, and a call that ends in an error status stores nothing, or a
// client retrying on errors would duplicate tasks.
import assert from "node:assert/strict";
import { join } from "node:path";
import { connect, constants, type ClientHttp2Session } from "node:http2";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { useTestServer } from "../support/fixture.js";
import { snapshot } from "../support/store.js";
import { readFixtureLog } from "../support/task-log.js";
import { SubmitRequestSchema, SubmitResponseSchema, Disposition } from "../../gen/ts/tollgate/v1/task_service_pb.js";
import { openGrpcStream } from "../support/grpc-stream.js";

const FIXTURE_HANDLERS = fileURLToPath(new URL("../fixtures/handlers.ts", import.meta.url));
const SUBMIT = "/tollgate.v1.TaskService/Submit";

// The default policy: of two tasks, one starts and one queues for a second.
const ctx = useTestServer("submit-messages", { TOLLGATE_HANDLER: FIXTURE_HANDLERS });

function frame(userId: string): Buffer {
  const body = toBinary(SubmitRequestSchema, create(SubmitRequestSchema, { userId }));
  const header = Buffer.alloc(5);
  header.writeUInt32BE(body.length, 1);
  return Buffer.concat([header, body]);
}

interface Answer {
  readonly status: string;
  readonly message: string;
  readonly body: Buffer;
}

/** A Submit call whose request stream is written by `send`, answered in full. */
function rawCall(
  session: ClientHttp2Session,
  send: (write: (chunk: Buffer) => void, end: () => void) => void,
): Promise<Answer> {
  return new Promise((resolve) => {
    const stream = openGrpcStream(session, SUBMIT);
    let status = "no-status";
    let message = "";
    const chunks: Buffer[] = [];
    const take = (headers: Record<string, unknown>): void => {
      if (headers["grpc-status"] !== undefined) status = String(headers["grpc-status"]);
      if (headers["grpc-message"] !== undefined) message = decodeURIComponent(String(headers["grpc-message"]));
    };
    stream.on("response", take);
    stream.on("trailers", take);
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.setTimeout(5_000, () => stream.close(constants.NGHTTP2_CANCEL));
    stream.on("close", () => resolve({ status, message, body: Buffer.concat(chunks) }));
    stream.on("error", () => {});
    send(
      (chunk) => stream.write(chunk),
      () => stream.end(),
    );
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

test("a Submit carrying two messages ends in an error and stores nothing, whether they arrive together or apart", async () => {
  const log = join(ctx.dir, "two-messages.log");
  process.env.TOLLGATE_FIXTURE_LOG = log;
  const session = connect(ctx.tollgate.address);
  try {
    const shapes: Record<string, (write: (chunk: Buffer) => void, end: () => void, userId: string) => void> = {
      together: (write, end, userId) => {
        write(Buffer.concat([frame(userId), frame(userId)]));
        end();
      },
      apart: (write, end, userId) => {
        write(frame(userId));
        setTimeout(() => {
          write(frame(userId));
          end();
        }, 200);
      },
      "second after a pause, then a pause before the end": (write, end, userId) => {
        write(frame(userId));
        setTimeout(() => write(frame(userId)), 200);
        setTimeout(end, 400);
      },
    };
    const outcomes: { shape: string; userId: string; answer: Answer; stored: string[] }[] = [];
    for (const [shape, send] of Object.entries(shapes)) {
      const userId = `two-${shape.replace(/\W+/g, "-")}`;
      const answer = await rawCall(session, (write, end) => send(write, end, userId));
      const stored = (await snapshot(ctx.tollgate.redis, userId, ctx.tollgate.config.ratePolicy)).userKeys;
      outcomes.push({ shape, userId, answer, stored });
    }
    // Long enough for a stored task to start, and a queued second to follow.
    await sleep(1_500);
    const starts = await readFixtureLog(log);
    const described = outcomes
      .map(({ shape, userId, answer, stored }) => {
        const ran = starts.filter((start) => start.userId === userId).length;
        return `${shape}: status ${answer.status} "${answer.message}", ${ran} tasks ran, stored ${JSON.stringify(stored)}`;
      })
      .join("\n");
    for (const { shape, answer, stored } of outcomes) {
      assert.equal(answer.status, "3", `${shape}: INVALID_ARGUMENT\n${described}`);
      assert.deepEqual(stored, [], `${shape}: an errored call stored nothing\n${described}`);
    }
    assert.deepEqual(
      starts.filter((start) => start.userId.startsWith("two-")),
      [],
      `tasks of errored calls ran\n${described}`,
    );
  } finally {
    session.close();
    delete process.env.TOLLGATE_FIXTURE_LOG;
  }
});

test("a Submit whose end of stream comes well after its one message still stores one task and answers it", async () => {
  const session = connect(ctx.tollgate.address);
  try {
    const answer = await rawCall(session, (write, end) => {
      write(frame("late-end"));
      setTimeout(end, 300);
    });
    assert.equal(answer.status, "0", answer.message);
    const response = fromBinary(SubmitResponseSchema, answer.body.subarray(5));
    assert.equal(response.disposition, Disposition.STARTED);
    const stored = await snapshot(ctx.tollgate.redis, "late-end", ctx.tollgate.config.ratePolicy);
    assert.equal(stored.taskKeys.filter((key) => key.endsWith(response.taskId)).length, 1);
  } finally {
    session.close();
  }
});

test("a Submit with no message is INVALID_ARGUMENT and stores nothing", async () => {
  const session = connect(ctx.tollgate.address);
  try {
    const before = (await ctx.tollgate.redis.keys("*")).sort();
    const answer = await rawCall(session, (_write, end) => end());
    assert.equal(answer.status, "3", answer.message);
    assert.deepEqual((await ctx.tollgate.redis.keys("*")).sort(), before);
  } finally {
    session.close();
  }
});
