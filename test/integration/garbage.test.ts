// Malformed HTTP/2 frames and protobuf messages sent to every method: each is
// refused, the server never crashes, and its memory comes back.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { connect, constants, type ClientHttp2Session } from "node:http2";
import { test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { useTestServer } from "../support/fixture.js";
import { openGrpcStream } from "../support/grpc-stream.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const ctx = useTestServer("garbage", { TOLLGATE_RATE_LIMITS: "1/1h", TOLLGATE_MAX_BACKLOG: "5" });

const METHODS = [
  "/tollgate.v1.TaskService/Submit",
  "/tollgate.v1.TaskService/GetTask",
  "/tollgate.v1.TaskService/WatchQueue",
  "/grpc.health.v1.Health/Check",
];

function frame(body: Buffer, { compressed = false, length = body.length } = {}): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt8(compressed ? 1 : 0, 0);
  header.writeUInt32BE(length, 1);
  return Buffer.concat([header, body]);
}

/** Protobuf bytes with the right field numbers and the wrong wire types. */
function wrongTypes(): Buffer {
  const choices = [
    Buffer.from([0x08, 0x96, 0x01]), // field 1 (user_id / task_id, a string) as a varint
    Buffer.from([0x0d, 1, 2, 3, 4]), // field 1 as fixed32
    Buffer.from([0x12, 0x7f, 0x01]), // field 2, length 127, 1 byte present
    Buffer.from([0x28, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), // an over-long varint
    Buffer.from([0x0a, 0x02, 0xc3, 0x28]), // field 1 with invalid UTF-8
    Buffer.from([0x07]), // field 0, wire type 7
  ];
  return choices[Math.floor(Math.random() * choices.length)]!;
}

/** One kind of garbage per call, chosen at random. */
function garbage(i: number): Buffer {
  switch (i % 6) {
    case 0:
      return randomBytes(Math.floor(Math.random() * 64)); // not even a frame header
    case 1:
      return frame(randomBytes(1 + Math.floor(Math.random() * 200))); // a frame of random bytes
    case 2: {
      const body = randomBytes(50);
      return frame(body, { length: 200 }).subarray(0, 5 + 10); // truncated
    }
    case 3:
      return frame(wrongTypes());
    case 4:
      return frame(randomBytes(8), { length: 0x7fffffff }).subarray(0, 13); // a huge length
    default:
      return frame(randomBytes(20), { compressed: true }); // "compressed" with no encoding
  }
}

function call(session: ClientHttp2Session, path: string, body: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const stream = openGrpcStream(session, path);
    let status = "no-status";
    stream.on("response", (headers) => {
      if (headers["grpc-status"] !== undefined) status = String(headers["grpc-status"]);
    });
    stream.on("trailers", (trailers) => {
      status = String(trailers["grpc-status"] ?? status);
    });
    stream.setTimeout(5_000, () => {
      // Random bytes can decode as a valid WatchQueue with follow set: such a
      // stream rightly stays open, so it is told apart from a missing status.
      if (status === "no-status" && path.endsWith("/WatchQueue")) status = "open-watch";
      stream.close(constants.NGHTTP2_CANCEL);
    });
    stream.on("close", () => resolve(status));
    stream.on("error", () => {});
    stream.resume();
    stream.end(body);
  });
}

test("10,000 malformed frames and messages to every method: refused, never a crash, memory comes back", async () => {
  const url = `http://127.0.0.1:${ctx.tollgate.server.port}`;
  gc();
  const heapBefore = process.memoryUsage().heapUsed;
  const statuses = new Map<string, number>();
  const sessions = Array.from({ length: 8 }, () => connect(url));
  try {
    const total = 10_000;
    let next = 0;
    await Promise.all(
      sessions.map(async (session) => {
        while (next < total) {
          const batch = [];
          for (let k = 0; k < 25 && next < total; k++, next++) {
            const i = next;
            batch.push(call(session, METHODS[i % METHODS.length]!, garbage(Math.floor(i / METHODS.length))));
          }
          for (const status of await Promise.all(batch)) statuses.set(status, (statuses.get(status) ?? 0) + 1);
        }
      }),
    );
  } finally {
    for (const session of sessions) session.close();
  }
  const described = JSON.stringify(Object.fromEntries(statuses));
  // 3 INVALID_ARGUMENT: TaskService's answer to anything that does not
  // decode or validate, and to a call that ends without a whole message.
  // 13 INTERNAL: grpc.health.v1's answer to bytes that do not decode.
  // 8 RESOURCE_EXHAUSTED: only a length prefix over the message cap (random
  // bytes nearly always declare one); grpc-js refuses it before reading on.
  // 0 OK and 5 NOT_FOUND: the odd random message that decodes (a health check
  // of an unknown service, a WatchQueue of a random user).
  // "open-watch": a WatchQueue that decoded with follow set, still streaming.
  const allowed = new Set(["3", "13", "8", "0", "5", "open-watch"]);
  for (const [status, count] of statuses)
    assert.ok(allowed.has(status), `${count} calls answered ${status}: ${described}`);
  const oversizedKinds = (2 / 6) * 10_000;
  assert.ok(
    (statuses.get("8") ?? 0) <= oversizedKinds + 100,
    `RESOURCE_EXHAUSTED beyond oversized lengths: ${described}`,
  );
  assert.ok((statuses.get("3") ?? 0) > 4_000, `INVALID_ARGUMENT is the common answer: ${described}`);

  // Still serving, and what the garbage allocated is collectable.
  assert.ok((await ctx.tollgate.client.submit({ userId: "after-garbage" })).taskId);
  await new Promise((resolve) => setTimeout(resolve, 200));
  gc();
  const grownMb = (process.memoryUsage().heapUsed - heapBefore) / 1024 / 1024;
  assert.ok(grownMb < 20, `heap grew ${grownMb.toFixed(1)} MB`);
});
