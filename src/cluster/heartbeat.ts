import type { Clock } from "../core/clock.js";

/**
 * A worker's side of the heartbeat: sends one at once, then one every
 * `periodMs`, each carrying the event-loop lag it saw: how late its own
 * timer fired. No extra timer wakes an idle worker to measure the lag.
 */
export class HeartbeatSender {
  private cancel: (() => void) | undefined;
  private due = 0;

  constructor(
    private readonly clock: Clock,
    private readonly periodMs: number,
    private readonly send: (eventLoopLagMs: number) => void,
  ) {}

  /** Sends the first heartbeat now and schedules the rest; idempotent. */
  start(): void {
    if (this.cancel) return;
    this.send(0);
    this.schedule();
  }

  /** Sends no more; idempotent. */
  stop(): void {
    this.cancel?.();
    this.cancel = undefined;
  }

  private schedule(): void {
    this.due = this.clock.now() + this.periodMs;
    this.cancel = this.clock.setTimer(() => {
      const lagMs = Math.max(0, this.clock.now() - this.due);
      this.schedule();
      this.send(lagMs);
    }, this.periodMs);
  }
}

/** The heartbeat period for a given timeout: five beats per timeout, at most ten a second. */
export function heartbeatPeriodMs(timeoutMs: number): number {
  return Math.max(100, Math.floor(timeoutMs / 5));
}

export interface SilentWorker<K> {
  readonly key: K;
  /** How long since it was last heard from (or since its start-up allowance ended). */
  readonly silentMs: number;
  /** The event-loop lag its last heartbeat carried. */
  readonly lastLagMs: number;
}

export interface HeartbeatMonitorOptions<K> {
  /** A worker silent longer than this is reported. */
  readonly timeoutMs: number;
  /** Extra time a newly started worker gets before its first heartbeat counts as late. */
  readonly startupAllowanceMs: number;
  /** Called once per stall: not again until the worker is heard from or watched anew. */
  readonly onSilent: (worker: SilentWorker<K>) => void;
}

interface Watched {
  /** When it was last heard from; Infinity once reported, until heard again. */
  lastHeardAt: number;
  lastLagMs: number;
}

/**
 * The primary's watchdog: checks every quarter of the timeout (at most ten
 * times a second) for workers not heard from within the timeout, and reports
 * each stall once.
 */
export class HeartbeatMonitor<K> {
  private readonly watched = new Map<K, Watched>();
  private cancel: (() => void) | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly options: HeartbeatMonitorOptions<K>,
  ) {}

  /** How often the monitor checks. */
  get checkEveryMs(): number {
    return Math.max(100, Math.floor(this.options.timeoutMs / 4));
  }

  /** Starts watching a newly started worker (or one restarted under the same key). */
  watch(key: K): void {
    this.watched.set(key, { lastHeardAt: this.clock.now() + this.options.startupAllowanceMs, lastLagMs: 0 });
  }

  /** Stops watching a worker that exited. */
  forget(key: K): void {
    this.watched.delete(key);
  }

  /** The worker said something: any message shows it is alive; a heartbeat also carries its lag. */
  heard(key: K, eventLoopLagMs?: number): void {
    const entry = this.watched.get(key);
    if (!entry) return;
    entry.lastHeardAt = this.clock.now();
    if (eventLoopLagMs !== undefined) entry.lastLagMs = eventLoopLagMs;
  }

  /** Starts the periodic checks; idempotent. */
  start(): void {
    if (this.cancel) return;
    const tick = (): void => {
      this.cancel = this.clock.setTimer(tick, this.checkEveryMs);
      this.check();
    };
    this.cancel = this.clock.setTimer(tick, this.checkEveryMs);
  }

  /** Stops the periodic checks; idempotent. */
  stop(): void {
    this.cancel?.();
    this.cancel = undefined;
  }

  /** Reports every worker silent past the timeout that was not reported yet. */
  check(): void {
    const now = this.clock.now();
    for (const [key, entry] of this.watched) {
      const silentMs = now - entry.lastHeardAt;
      if (silentMs > this.options.timeoutMs) {
        entry.lastHeardAt = Infinity; // one report per stall
        this.options.onSilent({ key, silentMs, lastLagMs: entry.lastLagMs });
      }
    }
  }
}
