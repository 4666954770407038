// The store's pub/sub bookkeeping over a fake subscriber connection (no
// Redis): one connection made on first use, a channel subscribed only while
// it has listeners, a failed SUBSCRIBE forgotten, reconnects reported.
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { describe, test } from "node:test";
import type { Redis } from "ioredis";
import { StoreUnavailable } from "../../src/core/store.js";
import { Subscriptions } from "../../src/redis/subscriptions.js";
import { settle } from "../support/fake-store.js";

/** What Subscriptions uses of an ioredis subscriber connection. */
class FakeSubscriber extends EventEmitter {
  readonly commands: string[] = [];
  /** The error the next SUBSCRIBE fails with, if any. */
  failNext: Error | undefined;
  disconnected = false;

  async connect(): Promise<void> {
    this.commands.push("CONNECT");
  }

  async subscribe(channel: string): Promise<void> {
    this.commands.push(`SUBSCRIBE ${channel}`);
    const error = this.failNext;
    this.failNext = undefined;
    if (error) throw error;
  }

  async unsubscribe(channel: string): Promise<void> {
    this.commands.push(`UNSUBSCRIBE ${channel}`);
  }

  disconnect(): void {
    this.disconnected = true;
  }
}

function setUp(): { subscriptions: Subscriptions; subscriber: FakeSubscriber; duplicates: () => number } {
  const subscriber = new FakeSubscriber();
  let duplicates = 0;
  const main = {
    duplicate: () => {
      duplicates++;
      return subscriber;
    },
  };
  return {
    subscriptions: new Subscriptions(main as unknown as Redis, "test"),
    subscriber,
    duplicates: () => duplicates,
  };
}

describe("redis subscriptions", () => {
  test("one connection, made on first use; a channel subscribed while it has listeners", async () => {
    const { subscriptions, subscriber, duplicates } = setUp();
    assert.equal(duplicates(), 0, "nothing connects before a listener");
    const got: string[] = [];
    const stopA = await subscriptions.listen("wake", (m) => got.push(`a:${m}`));
    const stopB = await subscriptions.listen("wake", (m) => got.push(`b:${m}`));
    const stopP = await subscriptions.listen("progress", (m) => got.push(`p:${m}`));
    assert.equal(duplicates(), 1);
    assert.deepEqual(subscriber.commands, ["CONNECT", "SUBSCRIBE wake", "SUBSCRIBE progress"]);
    subscriber.emit("message", "wake", "42");
    subscriber.emit("message", "progress", "alice");
    subscriber.emit("message", "other", "x");
    assert.deepEqual(got, ["a:42", "b:42", "p:alice"]);

    await stopA();
    await stopA(); // idempotent
    assert.deepEqual(subscriber.commands.slice(3), [], "still a listener on wake");
    await stopB();
    assert.deepEqual(subscriber.commands.slice(3), ["UNSUBSCRIBE wake"]);
    subscriber.emit("message", "wake", "43");
    assert.deepEqual(got, ["a:42", "b:42", "p:alice"]);
    await subscriptions.listen("wake", () => {});
    assert.deepEqual(subscriber.commands.slice(4), ["SUBSCRIBE wake"], "subscribed again for a new listener");
    await stopP();
    subscriptions.close();
    assert.ok(subscriber.disconnected);
  });

  test("a failed SUBSCRIBE rejects StoreUnavailable, keeps no listener, and the next listen subscribes afresh", async () => {
    const { subscriptions, subscriber } = setUp();
    subscriber.failNext = new Error("Stream isn't writeable and enableOfflineQueue options is false");
    const got: string[] = [];
    await assert.rejects(
      subscriptions.listen("progress", (m) => got.push(m)),
      (error: unknown) => {
        assert.ok(error instanceof StoreUnavailable);
        assert.equal(error.reason, "unreachable");
        return true;
      },
    );
    subscriber.emit("message", "progress", "lost");
    assert.equal(got.length, 0, "the failed listener was not kept");
    await subscriptions.listen("progress", (m) => got.push(m));
    assert.deepEqual(subscriber.commands, ["CONNECT", "SUBSCRIBE progress", "SUBSCRIBE progress"]);
    subscriber.emit("message", "progress", "alice");
    assert.deepEqual(got, ["alice"]);
  });

  test("the same listener given twice is two subscriptions", async () => {
    const { subscriptions, subscriber } = setUp();
    const got: string[] = [];
    const listener = (m: string): void => {
      got.push(m);
    };
    const first = await subscriptions.listen("progress", listener);
    await subscriptions.listen("progress", listener);
    await first();
    subscriber.emit("message", "progress", "alice");
    assert.deepEqual(got, ["alice"]);
  });

  test("every ready after the first connect is a reconnect, reported until stopped", async () => {
    const { subscriptions, subscriber } = setUp();
    let reconnects = 0;
    const stop = subscriptions.onReconnect(() => reconnects++);
    await subscriptions.listen("wake", () => {});
    await settle();
    subscriber.emit("ready");
    assert.equal(reconnects, 1);
    stop();
    subscriber.emit("ready");
    assert.equal(reconnects, 1);
  });
});
