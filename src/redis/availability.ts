import type { AvailabilityListener } from "../core/store.js";
import { kindOf, type RedisClient } from "./connection.js";
import { isRedisUnreachable } from "./errors.js";

/** While a Cluster's slot reads as down, how often to try it again. */
const PROBE_INTERVAL_MS = 1_000;

/**
 * Whether the store can be used now, for health. A plain or Sentinel client
 * says so itself: available from "ready" until "close" or "end" (after a
 * Sentinel failover it reconnects to the new master: "close", then
 * "ready"). A Cluster client stays "ready" while one master is down, yet
 * every command for that master's slots fails (CLUSTERDOWN, TRYAGAIN,
 * redirections, a closed node connection), and all of Tollgate's keys are in
 * one slot: so on a Cluster a command failing that way also makes the store
 * unavailable, and `probe` (a keyed command for that slot) is tried every
 * second until it succeeds. A node leaving or failing triggers a probe too.
 * Nothing runs while all is well, so an idle service stays idle.
 */
export class Availability {
  private readonly listeners = new Set<AvailabilityListener>();
  /** The slot's master failed a command (Cluster only); cleared by a successful probe. */
  private slotDown = false;
  private connected: boolean;
  private probeTimer: NodeJS.Timeout | undefined;
  private probing = false;
  private closed = false;
  private readonly cluster: boolean;

  constructor(
    private readonly redis: RedisClient,
    private readonly probe: () => Promise<unknown>,
  ) {
    this.cluster = kindOf(redis) === "cluster";
    this.connected = redis.status === "ready";
    redis.on("ready", this.onReady);
    redis.on("close", this.onLost);
    redis.on("end", this.onLost);
    if (this.cluster) {
      redis.on("-node", this.onNodeTrouble);
      redis.on("node error", this.onNodeTrouble);
    }
  }

  get available(): boolean {
    return this.connected && !this.slotDown;
  }

  /** Calls `listener` now and at every change; returns the way to stop. */
  listen(listener: AvailabilityListener): () => void {
    this.listeners.add(listener);
    listener(this.available);
    return () => this.listeners.delete(listener);
  }

  /** A store command failed: on a Cluster, an unreachable slot makes the store unavailable until a probe passes. */
  commandFailed(error: unknown): void {
    if (!this.cluster || this.closed || !isRedisUnreachable(error)) return;
    this.update(() => {
      this.slotDown = true;
    });
    this.scheduleProbe();
  }

  /** A store command succeeded: the slot answers. */
  commandSucceeded(): void {
    if (this.slotDown) this.update(() => (this.slotDown = false));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.probeTimer);
    this.listeners.clear();
    this.redis.off("ready", this.onReady);
    this.redis.off("close", this.onLost);
    this.redis.off("end", this.onLost);
    this.redis.off("-node", this.onNodeTrouble);
    this.redis.off("node error", this.onNodeTrouble);
  }

  private readonly onReady = (): void => this.update(() => (this.connected = true));
  private readonly onLost = (): void => this.update(() => (this.connected = false));
  private readonly onNodeTrouble = (): void => void this.runProbe();

  private update(change: () => void): void {
    const before = this.available;
    change();
    if (this.available !== before) for (const listener of [...this.listeners]) listener(this.available);
  }

  private scheduleProbe(): void {
    if (this.probeTimer !== undefined || this.closed) return;
    this.probeTimer = setTimeout(() => {
      this.probeTimer = undefined;
      void this.runProbe();
    }, PROBE_INTERVAL_MS);
    this.probeTimer.unref();
  }

  private async runProbe(): Promise<void> {
    if (this.probing || this.closed) return;
    this.probing = true;
    try {
      await this.probe();
      this.commandSucceeded();
    } catch (error) {
      this.commandFailed(error);
      // A failure commandFailed does not count (not a connection-level one)
      // still leaves the slot as it was; try again while it reads as down.
      if (this.slotDown) this.scheduleProbe();
    } finally {
      this.probing = false;
    }
  }
}
