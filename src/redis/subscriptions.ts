import type { Unsubscribe } from "../core/store.js";
import { toStoreError } from "./errors.js";
import { duplicateClient, kindOf, type RedisClient } from "./connection.js";

type MessageListener = (message: string) => void;

interface Channel {
  readonly listeners: Set<MessageListener>;
  /** The SUBSCRIBE in flight or done; undefined while not subscribed, and once an attempt failed. */
  subscribed: Promise<void> | undefined;
}

/**
 * Redis pub/sub for one store: one subscriber connection (a duplicate of the
 * store's), made on first use and shared by every channel, and each channel
 * subscribed only while it has listeners. A SUBSCRIBE that fails (Redis down)
 * is forgotten at once, so the next listener subscribes afresh instead of
 * inheriting the failure; ioredis subscribes again by itself after a
 * reconnect, and reconnect listeners hear of it (messages published
 * meanwhile were missed).
 */
export class Subscriptions {
  private subscriber: { readonly redis: RedisClient; readonly connected: Promise<void> } | undefined;
  private readonly channels = new Map<string, Channel>();
  private readonly reconnectListeners = new Set<() => void>();
  private closed = false;

  constructor(
    private readonly redis: RedisClient,
    private readonly connectionName: string,
  ) {}

  /**
   * Calls `listener` with every message on `channel`; resolves once
   * subscribed. On failure (StoreUnavailable when Redis cannot be reached)
   * the listener is not kept.
   */
  async listen(channel: string, listener: MessageListener): Promise<Unsubscribe> {
    if (this.closed) throw new Error("the task store is closed");
    let entry = this.channels.get(channel);
    if (!entry) {
      entry = { listeners: new Set(), subscribed: undefined };
      this.channels.set(channel, entry);
    }
    const current = entry;
    // Its own entry, so a listener given twice is two subscriptions.
    const registered: MessageListener = (message) => listener(message);
    current.listeners.add(registered);
    if (!current.subscribed) {
      const attempt = this.subscribe(channel);
      current.subscribed = attempt;
      attempt.catch(() => {
        if (current.subscribed === attempt) current.subscribed = undefined;
      });
    }
    try {
      await current.subscribed;
    } catch (error) {
      current.listeners.delete(registered);
      throw toStoreError(error);
    }
    let stopped = false;
    return async () => {
      if (stopped) return;
      stopped = true;
      current.listeners.delete(registered);
      if (current.listeners.size > 0 || !current.subscribed) return;
      current.subscribed = undefined;
      await this.subscriber?.redis.unsubscribe(channel).catch(() => {});
    };
  }

  /** Calls `listener` whenever the subscriber connection is ready again after a drop; returns the way to stop. */
  onReconnect(listener: () => void): () => void {
    this.reconnectListeners.add(listener);
    return () => this.reconnectListeners.delete(listener);
  }

  private async subscribe(channel: string): Promise<void> {
    const { redis, connected } = this.connection();
    await connected;
    if (this.closed) throw new Error("the task store is closed");
    await redis.subscribe(channel);
  }

  private connection(): { readonly redis: RedisClient; readonly connected: Promise<void> } {
    if (!this.subscriber) {
      const redis = duplicateClient(this.redis, this.connectionName);
      redis.on("error", () => {}); // the store's main connection reports Redis trouble
      redis.on("message", (channel: string, message: string) => {
        const entry = this.channels.get(channel);
        if (entry) for (const listener of [...entry.listeners]) listener(message);
      });
      // A failed first connect is not fatal: ioredis keeps reconnecting, and
      // until then each SUBSCRIBE fails fast (no offline queue).
      const connected = redis.connect().then(
        () => {},
        () => {},
      );
      // From the first connect on (made or failed), every "ready" is a reconnect.
      const reconnected = (): void => {
        for (const listener of [...this.reconnectListeners]) listener();
      };
      void connected.then(() => {
        redis.on("ready", reconnected);
        // A Cluster client subscribes through one node and, when that node
        // leaves, subscribes again through another without a "ready" of its
        // own: messages published meanwhile may have been missed too.
        if (kindOf(redis) === "cluster") redis.on("-node", reconnected);
      });
      this.subscriber = { redis, connected };
    }
    return this.subscriber;
  }

  /** Drops the subscriber connection and every listener. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.channels.clear();
    this.reconnectListeners.clear();
    this.subscriber?.redis.disconnect();
  }
}
