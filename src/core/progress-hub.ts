import type { Clock } from "./clock.js";
import type { Logger } from "../logger.js";
import type { QueueSnapshot, TaskStore, Unsubscribe } from "./store.js";

/** Gets the snapshots of the queue it watches, or the error that ends the watch. */
export interface SnapshotListener {
  deliver(snapshot: QueueSnapshot): void;
  fail(error: unknown): void;
}

export interface ProgressHubOptions {
  /** At most one snapshot per queue this often, however many changes. */
  readonly coalesceMs: number;
  /** A snapshot this often when nothing changes, so watchers know all is well. */
  readonly heartbeatMs: number;
}

const ALL_QUEUES = "";

/**
 * Fans queue progress out to WatchQueue streams. One subscription to the
 * store's progress events per process (only while someone watches), and one
 * snapshot read per watched queue per coalescing period, shared by every
 * stream watching that queue: 1,000 streams on one queue cost what one does.
 */
export class ProgressHub {
  private readonly topics = new Map<string, Topic>();
  private subscribed: Promise<Unsubscribe> | undefined;
  private closed = false;

  constructor(
    private readonly store: TaskStore,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly options: ProgressHubOptions,
  ) {}

  /**
   * Starts delivering snapshots of `userId`'s queue ("" for every queue);
   * returns the way to stop. Rejects (and leaves nothing behind) when the
   * progress events cannot be subscribed, e.g. while the store is down.
   */
  async watch(userId: string, listener: SnapshotListener): Promise<() => void> {
    if (this.closed) throw new Error("progress hub is closed");
    let topic = this.topics.get(userId);
    if (!topic) {
      topic = new Topic(
        () => (userId === ALL_QUEUES ? this.store.snapshotAll() : this.store.snapshot(userId)),
        this.clock,
        this.options,
      );
      this.topics.set(userId, topic);
    }
    topic.listeners.add(listener);
    const current = topic;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      current.listeners.delete(listener);
      if (current.listeners.size === 0) {
        current.stop();
        if (this.topics.get(userId) === current) this.topics.delete(userId);
        if (this.topics.size === 0) this.unsubscribe();
      }
    };
    try {
      await this.subscribe();
    } catch (error) {
      // A watcher that could not subscribe must not stay registered: it would
      // keep its topic (and the hub's subscription state) alive for nobody.
      release();
      throw error;
    }
    if (this.closed) {
      release();
      throw new Error("progress hub is closed");
    }
    current.refresh(listener);
    return release;
  }

  /**
   * Subscribes to progress events once for every watcher. A failed attempt
   * is forgotten as soon as it fails, so the next watch tries again rather
   * than inheriting the rejection until the process restarts.
   */
  private subscribe(): Promise<Unsubscribe> {
    if (!this.subscribed) {
      const attempt = this.store.onProgress(this.onProgress);
      this.subscribed = attempt;
      attempt.catch(() => {
        if (this.subscribed === attempt) this.subscribed = undefined;
      });
    }
    return this.subscribed;
  }

  get watchedQueues(): number {
    return this.topics.size;
  }

  private readonly onProgress = (userId: string): void => {
    this.topics.get(userId)?.changed();
    this.topics.get(ALL_QUEUES)?.changed();
  };

  private unsubscribe(): void {
    const subscribed = this.subscribed;
    if (!subscribed) return;
    this.subscribed = undefined;
    subscribed
      .then((unsubscribe) => unsubscribe())
      .catch((error: unknown) => {
        // A subscribe that failed left nothing to undo.
        this.logger.debug({ error: (error as Error).message }, "progress unsubscribe failed");
      });
  }

  /** Ends every watch with the given error (shutdown). Idempotent. */
  close(reason: unknown): void {
    this.closed = true;
    for (const topic of this.topics.values()) {
      topic.stop();
      for (const listener of [...topic.listeners]) listener.fail(reason);
      topic.listeners.clear();
    }
    this.topics.clear();
    this.unsubscribe();
  }
}

/** One watched queue: its listeners, and the coalesced snapshot reads for them. */
class Topic {
  readonly listeners = new Set<SnapshotListener>();
  private lastRead = -Infinity;
  private cancelRead: (() => void) | undefined;
  private cancelHeartbeat: (() => void) | undefined;
  private reading = false;
  private changedWhileReading = false;
  private stopped = false;

  constructor(
    private readonly read: () => Promise<QueueSnapshot>,
    private readonly clock: Clock,
    private readonly options: ProgressHubOptions,
  ) {}

  /** A new listener needs a snapshot now, not at the next change. */
  refresh(listener: SnapshotListener): void {
    this.read().then(
      (snapshot) => {
        if (this.listeners.has(listener)) listener.deliver(snapshot);
      },
      (error: unknown) => listener.fail(error),
    );
    this.armHeartbeat();
  }

  changed(): void {
    if (this.stopped || this.cancelRead) return;
    if (this.reading) {
      this.changedWhileReading = true;
      return;
    }
    const wait = Math.max(0, this.lastRead + this.options.coalesceMs - this.clock.now());
    this.cancelRead = this.clock.setTimer(() => {
      this.cancelRead = undefined;
      void this.readAndDeliver();
    }, wait);
  }

  private async readAndDeliver(): Promise<void> {
    if (this.stopped) return;
    this.reading = true;
    this.lastRead = this.clock.now();
    try {
      const snapshot = await this.read();
      for (const listener of [...this.listeners]) listener.deliver(snapshot);
    } catch {
      // The next change or heartbeat reads again; a stream outlives a blip.
    } finally {
      this.reading = false;
    }
    this.armHeartbeat();
    if (this.changedWhileReading) {
      this.changedWhileReading = false;
      this.changed();
    }
  }

  private armHeartbeat(): void {
    if (this.stopped) return;
    this.cancelHeartbeat?.();
    this.cancelHeartbeat = this.clock.setTimer(() => void this.readAndDeliver(), this.options.heartbeatMs);
  }

  stop(): void {
    this.stopped = true;
    this.cancelRead?.();
    this.cancelHeartbeat?.();
    this.cancelRead = undefined;
    this.cancelHeartbeat = undefined;
  }
}
