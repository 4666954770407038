// WatchQueue: the first message predicts the drain and the stream ends drained
// on time, a watcher on another server sees the drain, cancelled streams leave
// no subscription or timer behind, and a reader that reads nothing gets a few
// snapshots rather than a growing buffer.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { connect } from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { register } from "prom-client";
import { TestRedis } from "../support/redis.js";
import { startTestServer } from "../support/server.js";
import { WatchQueueRequestSchema, type WatchQueueResponse } from "../../gen/ts/tollgate/v1/task_service_pb.js";
import { pollUntil } from "../support/expect.js";
import { keys } from "../support/store.js";

let redis: TestRedis;

before(async () => {
  redis = await TestRedis.start();
});
after(async () => {
  await redis?.stop();
});

function assertNeverBackwards(messages: readonly WatchQueueResponse[]): void {
  for (let i = 1; i < messages.length; i++) {
    const [before, now] = [messages[i - 1]!, messages[i]!];
    assert.ok(now.completed >= before.completed, `completed went back at message ${i}`);
    assert.ok(now.failed >= before.failed, `failed went back at message ${i}`);
    assert.ok(now.deadLettered >= before.deadLettered, `dead went back at message ${i}`);
    assert.ok(now.completed + now.queued + now.running <= 25n, `message ${i} counts more tasks than exist`);
  }
}

describe("WatchQueue", () => {
  test("25 tasks under 1/1s,5/5s: the first message predicts the drain, the stream ends drained on time", async () => {
    const tollgate = await startTestServer(redis.url, { TOLLGATE_RATE_LIMITS: "1/1s,5/5s" });
    try {
      for (let i = 0; i < 25; i++) await tollgate.client.submit({ userId: "123" });
      const messages: WatchQueueResponse[] = [];
      for await (const message of tollgate.client.watchQueue({ userId: "123" })) messages.push(message);
      const first = messages[0]!;
      const last = messages.at(-1)!;
      assert.equal(first.userId, "123");
      assert.ok(first.queued >= 23n, `first message: ${first.queued} queued`);
      assert.ok(last.drained, "the stream ends with drained");
      assert.equal(messages.filter((m) => m.drained).length, 1, "nothing after the drained message");
      assert.equal(last.completed + 1n >= 24n, true, `completed ${last.completed}`);
      const predicted = timestampMs(first.estimatedDrain!);
      const drainedAt = timestampMs(last.observedAt!);
      // The estimate is the schedule's last start: never early by more than
      // clock granularity allows, and late only by how late starts ran. A
      // late start pushes every later one back (windows open at starts), so
      // a loaded machine gets 3 s that way; an estimate that misread the
      // policy is off by whole windows and still fails.
      assert.ok(
        drainedAt - predicted >= -1_000 && drainedAt - predicted <= 3_000,
        `drained ${drainedAt - predicted} ms from the prediction`,
      );
      assertNeverBackwards(messages);
      // Coalesced: far fewer messages than the 24 starts and 24 ends.
      assert.ok(messages.length <= 60, `${messages.length} messages`);
    } finally {
      await tollgate.close();
    }
  });

  test("a watcher on a second server sees the drain done by the first", async () => {
    const runner = await startTestServer(redis.url, { TOLLGATE_RATE_LIMITS: "5/1s" });
    const watcherSide = await startTestServer(redis.url, { TOLLGATE_RATE_LIMITS: "5/1s", TOLLGATE_CONCURRENCY: "0" });
    try {
      for (let i = 0; i < 8; i++) await runner.client.submit({ userId: "far" });
      const messages: WatchQueueResponse[] = [];
      for await (const message of watcherSide.client.watchQueue({ userId: "far" })) messages.push(message);
      assert.ok(messages.at(-1)!.drained);
      assert.ok(
        messages.some((m) => m.completed > 0n),
        "saw completions made by the other server",
      );
    } finally {
      await watcherSide.close();
      await runner.close();
    }
  });

  test("cancelling 100 streams leaves no subscription or timer behind", async () => {
    const tollgate = await startTestServer(redis.url, { TOLLGATE_RATE_LIMITS: "1/60s" });
    const plain = redis.client();
    try {
      await tollgate.client.submit({ userId: "busy" });
      await tollgate.client.submit({ userId: "busy" });
      const resourcesBefore = process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
      const controllers = Array.from({ length: 100 }, () => new AbortController());
      const firstMessages = controllers.map(async (controller, i) => {
        const stream = tollgate.client.watchQueue(
          { userId: i % 2 ? "busy" : "", follow: true },
          { signal: controller.signal },
        );
        const iterator = stream[Symbol.asyncIterator]();
        await iterator.next();
        return iterator;
      });
      const iterators = await Promise.all(firstMessages);
      // One progress channel per partition.
      const channels = keys.all.map((partition) => partition.progressChannel);
      const subscribers = async (): Promise<number[]> => {
        const reply = (await plain.pubsub("NUMSUB", ...channels)) as (string | number)[];
        return reply.filter((_, i) => i % 2 === 1).map(Number);
      };
      assert.deepEqual(
        await subscribers(),
        channels.map(() => 1),
        "one subscription per channel for the whole process",
      );
      assert.equal(tollgate.server.hub.watchedQueues, 2);
      for (const controller of controllers) controller.abort();
      await Promise.all(iterators.map((it) => it.next().catch(() => undefined)));
      await pollUntil("every watch released", () => tollgate.server.hub.watchedQueues === 0, { timeoutMs: 10_000 });
      await pollUntil(
        "the subscription to go",
        async () => {
          return (await subscribers()).every((count) => count === 0);
        },
        { timeoutMs: 10_000 },
      );
      const resourcesAfter = process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
      assert.ok(resourcesAfter <= resourcesBefore, `${resourcesAfter - resourcesBefore} timers left behind`);
    } finally {
      plain.disconnect();
      await tollgate.close();
    }
  });

  test("a follower's counts stay exact across the user's counters expiring while idle", async () => {
    const tollgate = await startTestServer(redis.url, { TOLLGATE_RATE_LIMITS: "5/1s", TOLLGATE_RETENTION: "1s" });
    const plain = redis.client();
    const stop = new AbortController();
    const messages: WatchQueueResponse[] = [];
    const userId = "comes-back";
    const reading = (async () => {
      try {
        for await (const message of tollgate.client.watchQueue({ userId, follow: true }, { signal: stop.signal }))
          messages.push(message);
      } catch {
        // aborted at the end
      }
    })();
    const completed = (n: bigint) => () => messages.at(-1)?.completed === n && messages.at(-1)?.drained;
    try {
      await pollUntil("the stream's first message", () => messages.length > 0);
      for (let i = 0; i < 2; i++) await tollgate.client.submit({ userId });
      await pollUntil("2 completed", completed(2n));
      const stats = keys.forUser(userId).stats(userId);
      await pollUntil("the idle user's counters to expire", async () => (await plain.exists(stats)) === 0);
      await tollgate.client.submit({ userId });
      await pollUntil("3 completed: the new counters add to what was seen", completed(3n));
      assertNeverBackwards(messages);
    } finally {
      stop.abort();
      await reading;
      plain.disconnect();
      await tollgate.close();
    }
  });
});

describe("WatchQueue and a reader that reads nothing", () => {
  test("10 s while 500 tasks drain: the stream holds a few snapshots, never a growing buffer", async () => {
    const tollgate = await startTestServer(redis.url, { TOLLGATE_RATE_LIMITS: "1/1s" });
    // A raw HTTP/2 client that grants the server no flow-control window: the
    // server can send headers but not one byte of message.
    const session = connect(tollgate.address, { settings: { initialWindowSize: 0 } });
    try {
      // 50 users x 10 tasks under 1/1s, their first starts spread over a
      // second: the queues change all the time for 10 s.
      for (let u = 0; u < 50; u++) {
        await Promise.all(Array.from({ length: 10 }, () => tollgate.client.submit({ userId: `slow-${u}` })));
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const sentBefore = await counter("tollgate_watch_messages_sent_total");
      const supersededBefore = await counter("tollgate_watch_messages_superseded_total");
      const request = toBinary(WatchQueueRequestSchema, create(WatchQueueRequestSchema, { userId: "", follow: true }));
      const frame = Buffer.alloc(5 + request.length);
      frame.writeUInt32BE(request.length, 1);
      Buffer.from(request).copy(frame, 5);
      const stream = session.request({
        ":method": "POST",
        ":path": "/tollgate.v1.TaskService/WatchQueue",
        "content-type": "application/grpc",
        te: "trailers",
      });
      stream.on("error", () => {});
      stream.pause(); // and never read
      stream.end(frame);
      await new Promise((resolve) => setTimeout(resolve, 10_000));
      const sent = (await counter("tollgate_watch_messages_sent_total")) - sentBefore;
      const superseded = (await counter("tollgate_watch_messages_superseded_total")) - supersededBefore;
      const left = (await tollgate.store.snapshotAll()).queued;
      // About none left when idle; a drain blocked by the stuck stream would leave nearly 500.
      assert.ok(left < 250, `${left} still queued: the drain went on meanwhile`);
      // grpc-js's writable side takes up to 16 messages before it pushes back.
      assert.ok(sent <= 17, `${sent} messages handed to a stream that can take none`);
      assert.ok(superseded >= 30, `only ${superseded} snapshots were superseded`);
      stream.close();
    } finally {
      session.destroy();
      await tollgate.close();
    }
  });
});

async function counter(name: string): Promise<number> {
  const metric = register.getSingleMetric(name);
  const value = await metric?.get();
  return value?.values[0]?.value ?? 0;
}
