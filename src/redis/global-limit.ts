import { formatRatePolicy, parseRatePolicy, type RatePolicy } from "../core/rate-policy.js";
import type { Clock } from "../core/clock.js";
import type { RedisClient } from "./connection.js";
import type { GlobalKeys } from "./keys.js";
import { storeCall } from "./errors.js";
import { LuaScript } from "./lua-script.js";

const reserveScript = new LuaScript("global-reserve-n.lua");
const refundScript = new LuaScript("global-refund-n.lua");

/**
 * How long the global spec read from Redis is trusted: a change through
 * PolicyService binds every process within this (the scripts themselves
 * always read the stored spec; this only says whether to ask them at all).
 */
const SPEC_TRUST_MS = 500;

/** Units granted by the global windows, and how to give back what was not used. */
export interface Reservation {
  readonly granted: number;
  /** ms until the global windows have room again, when fewer were granted than wanted. */
  readonly waitMs: number;
  /** Gives back `units` of the grant (best effort: a refund lost only leaves units unused). */
  refund(units: number): Promise<void>;
}

/**
 * The global limit: windows over every user together (TOLLGATE_GLOBAL_LIMITS,
 * or the spec PolicyService stored). Its counters live in their own slot
 * (keys.ts GlobalKeys), which a partition's scripts cannot touch on a
 * Cluster, so a start first reserves units here (global-reserve-n.lua) and
 * gives back what it did not use (global-refund-n.lua). With no global limit,
 * nothing is asked of Redis beyond reading the stored spec twice a second
 * while tasks start.
 */
export class GlobalLimit {
  private spec: { readonly text: string; readonly windows: RatePolicy; readonly readAt: number } | undefined;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: GlobalKeys,
    /** The host's TOLLGATE_GLOBAL_LIMITS (empty: none). */
    private readonly hostPolicy: RatePolicy,
    private readonly clock: Clock,
  ) {}

  /** The host's spec: the scripts' fallback when none is stored. */
  get hostSpec(): string {
    return formatRatePolicy(this.hostPolicy);
  }

  /** The global windows in force (empty: none), read again when older than SPEC_TRUST_MS. */
  async windows(): Promise<RatePolicy> {
    const now = this.clock.now();
    if (!this.spec || now - this.spec.readAt >= SPEC_TRUST_MS) {
      // Through storeCall, so an outage is StoreUnavailable (UNAVAILABLE at Submit), as for every other command.
      const stored = await storeCall(() => this.redis.get(this.keys.policy));
      this.learn(stored ?? this.hostSpec, now);
    }
    return this.spec!.windows;
  }

  private learn(text: string, now: number): void {
    if (this.spec?.text === text) {
      this.spec = { ...this.spec, readAt: now };
      return;
    }
    this.spec = { text, windows: text === "" ? [] : parseRatePolicy(text), readAt: now };
  }

  /**
   * Takes units for `requester` (a partition; "" for a start at Submit), one
   * per user it would start, each due since the moment given (earliest
   * first); the first `granted` of them are granted. Undefined when there is
   * no global limit.
   */
  async reserve(requester: string, dues: readonly number[]): Promise<Reservation | undefined> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const windows = await this.windows();
      if (windows.length === 0) return undefined;
      const counters = windows.map((window) => this.keys.window(window.durationMs));
      const reply = (await reserveScript.run(
        this.redis,
        [this.keys.policy, this.keys.waiting, ...counters],
        [
          this.hostSpec,
          requester,
          dues.length,
          ...dues.map((due) => Math.round(due)),
          ...windows.map((window) => window.durationMs / 1000),
        ],
      )) as (number | string)[];
      const granted = Number(reply[0]);
      if (granted < 0 || String(reply[2]) !== this.spec!.text) {
        // The spec changed since it was read: learn it and ask again with its windows.
        this.learn(String(reply[2]), this.clock.now());
        if (granted < 0) continue;
      }
      const expiries = reply.slice(3).map(Number);
      return {
        granted,
        waitMs: Number(reply[1]),
        refund: async (units: number) => {
          if (units <= 0 || granted <= 0) return;
          try {
            await refundScript.run(this.redis, counters, [Math.min(units, granted), ...expiries]);
          } catch {
            // The units stay used until their window resets: fewer starts, never more.
          }
        },
      };
    }
    throw new Error("the global limit kept changing while a start reserved units");
  }
}
