import { StoreUnavailable, type Unsubscribe } from "../core/store.js";
import { toStoreError } from "./errors.js";
import { commandTimeoutOf, duplicateClient, kindOf, type RedisClient } from "./connection.js";

type MessageListener = (message: string) => void;

interface Channel {
  readonly listeners: Set<MessageListener>;
  /** The SUBSCRIBE in flight or done; undefined while not subscribed, and once an attempt failed. */
  subscribed: Promise<void> | undefined;
}

/**
 * How long a Cluster's sharded subscribers must stay up after subscribing
 * again before reconnect listeners are told (see watchShards).
 */
const RESUBSCRIBED_QUIET_MS = 100;

interface Subscriber {
  readonly redis: RedisClient;
  readonly connected: Promise<void>;
}

/**
 * Redis pub/sub for one store, and each channel subscribed only while it has
 * listeners. A SUBSCRIBE that fails (Redis down) is forgotten at once, so the
 * next listener subscribes afresh instead of inheriting the failure; the
 * subscriptions come back by themselves after a reconnect, and reconnect
 * listeners hear of it (messages published meanwhile were missed).
 *
 * On standalone Redis and Sentinel: one subscriber connection (a duplicate of
 * the store's), made on first use and shared by every channel; SUBSCRIBE, and
 * ioredis subscribes again by itself after a reconnect.
 *
 * On a Redis Cluster, sharded pub/sub (Redis 7): the channels carry their
 * partition's hash tag and are published with SPUBLISH, which only the master
 * of the channel's slot delivers. A duplicate Cluster client with ioredis'
 * `shardedSubscribers` keeps a subscriber connection per master, sends each
 * SSUBSCRIBE to the one serving the channel's slot, and after a failover (or
 * any change of the slot map) subscribes again on the slot's new master and
 * emits "subscribersReady": that is the reconnect.
 */
export class Subscriptions {
  private subscriber: Subscriber | undefined;
  private readonly channels = new Map<string, Channel>();
  private readonly reconnectListeners = new Set<() => void>();
  private readonly sharded: boolean;
  private closed = false;

  constructor(
    private readonly redis: RedisClient,
    private readonly connectionName: string,
  ) {
    this.sharded = kindOf(redis) === "cluster";
  }

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
    if (!current.subscribed) this.subscribeAfresh(channel, current);
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
      await this.unsubscribe(channel);
    };
  }

  /** Calls `listener` whenever the subscriptions are back after a drop (or moved, on a Cluster); returns the way to stop. */
  onReconnect(listener: () => void): () => void {
    this.reconnectListeners.add(listener);
    return () => this.reconnectListeners.delete(listener);
  }

  /** Starts a SUBSCRIBE for `entry`, forgotten if it fails. */
  private subscribeAfresh(channel: string, entry: Channel): void {
    const attempt = this.subscribe(channel);
    entry.subscribed = attempt;
    attempt.catch(() => {
      if (entry.subscribed !== attempt) return;
      entry.subscribed = undefined;
      // ioredis noted the sharded channel before sending SSUBSCRIBE (and
      // would subscribe it again after the next failover): take it back,
      // unless a new attempt is under way already.
      if (this.sharded && !this.closed) void this.unsubscribe(channel);
    });
  }

  private async subscribe(channel: string): Promise<void> {
    const { redis, connected } = this.connection();
    await connected;
    if (this.closed) throw new Error("the task store is closed");
    if (!this.sharded) {
      await redis.subscribe(channel);
      return;
    }
    try {
      await this.timed(redis.ssubscribe(channel), `SSUBSCRIBE ${channel}`);
    } catch (error) {
      // The slot's master has no subscriber connection yet (the slot map is
      // being refreshed, or its master is down): try again later.
      if (error instanceof Error && /^No sharded subscriber for slot/.test(error.message)) {
        throw new StoreUnavailable("unreachable", error);
      }
      throw error;
    }
  }

  /** UNSUBSCRIBE (or SUNSUBSCRIBE), whatever becomes of it: a connection gone has no subscription left. */
  private async unsubscribe(channel: string): Promise<void> {
    const redis = this.subscriber?.redis;
    if (!redis) return;
    const sent = this.sharded ? redis.sunsubscribe(channel) : redis.unsubscribe(channel);
    await this.timed(sent, `SUNSUBSCRIBE ${channel}`).catch(() => {});
  }

  /**
   * `command`, failing after the store's command timeout. ioredis' per-master
   * sharded subscriber connections have no command timeout of their own, and
   * ioredis 5.9 never settles an SSUBSCRIBE answered with MOVED (it refreshes
   * the slot map and subscribes again by itself): without a deadline such a
   * listen() would hang.
   */
  private async timed(command: Promise<unknown>, what: string): Promise<void> {
    if (!this.sharded) {
      await command;
      return;
    }
    const ms = commandTimeoutOf(this.redis);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        command,
        new Promise<never>((_resolve, reject) => {
          timer = setTimeout(() => reject(new Error(`Command timed out after ${ms} ms: ${what}`)), ms);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  private connection(): Subscriber {
    if (!this.subscriber) {
      const redis = duplicateClient(this.redis, this.connectionName);
      redis.on("error", () => {}); // the store's main connection reports Redis trouble
      redis.on(this.sharded ? "smessage" : "message", (channel: string, message: string) => {
        if (this.subscriber?.redis !== redis) return; // a client being replaced
        const entry = this.channels.get(channel);
        if (entry) for (const listener of [...entry.listeners]) listener(message);
      });
      // A failed first connect is not fatal: ioredis keeps reconnecting, and
      // until then each SUBSCRIBE fails fast (no offline queue).
      const connected = redis.connect().then(
        () => {},
        () => {},
      );
      if (this.sharded) {
        this.watchShards(redis);
      } else {
        // From the first connect on (made or failed), every "ready" is a reconnect.
        void connected.then(() => redis.on("ready", () => this.reconnected()));
      }
      this.subscriber = { redis, connected };
    }
    return this.subscriber;
  }

  /** Reports the reconnects of a sharded subscriber client. */
  private watchShards(redis: RedisClient): void {
    // A subscriber connection (or the master it was on) was lost, or the
    // slots moved: once ioredis has made the subscriber connections again and
    // sent the SSUBSCRIBEs, it emits "subscribersReady". Messages published
    // meanwhile may have been missed. While a failed master is not replaced
    // yet, ioredis goes round and round (its subscriber there is refused,
    // "-node", slot map refreshed at once, still naming the dead master, a
    // new subscriber, "subscribersReady", refused ...), every few ms: report
    // once it has been quiet for a while, not each round.
    let dropped = false;
    let report: NodeJS.Timeout | undefined;
    const drop = (): void => {
      dropped = true;
      clearTimeout(report);
      report = undefined;
    };
    redis.on("-node", drop);
    redis.on("-subscriber", drop);
    redis.on("subscribersReady", () => {
      if (!dropped) return;
      clearTimeout(report);
      report = setTimeout(() => {
        report = undefined;
        dropped = false;
        if (!this.closed && this.subscriber?.redis === redis) this.reconnected();
      }, RESUBSCRIBED_QUIET_MS);
      report.unref();
    });
    redis.on("end", () => clearTimeout(report));
    // The Cluster client connected again as a whole, after losing every node
    // ("close"; a Cluster emits its first "ready" only after connect()
    // resolved, so that one is told apart this way): ioredis 5.9 does not
    // restart its sharded subscribers then (the slot map is unchanged, so it
    // sees nothing to do), so start over with a new client.
    let closed = false;
    redis.on("close", () => {
      closed = true;
    });
    redis.on("ready", () => {
      if (closed) this.replaceSharded(redis);
    });
  }

  /** Replaces the sharded subscriber client with a new one, subscribes every channel with listeners again, then reports a reconnect. */
  private replaceSharded(old: RedisClient): void {
    if (this.closed || this.subscriber?.redis !== old) return;
    this.subscriber = undefined;
    old.disconnect();
    const attempts: Promise<void>[] = [];
    for (const [channel, entry] of this.channels) {
      if (entry.listeners.size === 0 || !entry.subscribed) continue;
      this.subscribeAfresh(channel, entry);
      if (entry.subscribed) attempts.push(entry.subscribed);
    }
    if (attempts.length === 0) this.connection();
    void Promise.allSettled(attempts).then(() => {
      if (!this.closed) this.reconnected();
    });
  }

  private reconnected(): void {
    for (const listener of [...this.reconnectListeners]) listener();
  }

  /** Drops the subscriber connection(s) and every listener. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.channels.clear();
    this.reconnectListeners.clear();
    this.subscriber?.redis.disconnect();
  }
}
