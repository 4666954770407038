import type {
  DrainState,
  EffectivePolicy,
  GlobalPolicy,
  NamedPlan,
  PolicyAssignment,
  PolicyStore,
} from "../core/policy-store.js";
import { formatRatePolicy, parseRatePolicy, type RatePolicy } from "../core/rate-policy.js";
import { DEFAULT_PLAN, type UserPolicy } from "../core/user-policy.js";
import type { RedisClient } from "./connection.js";
import { storeCall } from "./errors.js";
import type { Keys } from "./keys.js";
import { decodeAssignment, decodePolicy, encodeAssignment, encodePolicy } from "./policy-spec.js";
import type { RateWindows } from "./rate-windows.js";
import type { GlobalLimit } from "./global-limit.js";

/**
 * Plans and users' policies in Redis (keys.ts policies() and plans()). A
 * user's entry lives in its partition; a plan is written to every
 * partition's copy, since a script reads only its own slot. Reads of plans
 * take partition 0's copy. Plain commands: each change is one key, and the
 * scripts read whatever is there at each start.
 */
export class RedisPolicyStore implements PolicyStore {
  private readonly fallback: UserPolicy;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly windows: RateWindows,
    private readonly global: GlobalLimit,
  ) {
    this.fallback = Object.freeze({ windows: windows.policy, maxRunning: 0 });
  }

  /** The host's TOLLGATE_RATE_LIMITS as a spec: the scripts' fallback when no plan "default" is stored. */
  get fallbackSpec(): string {
    return encodePolicy(this.fallback);
  }

  async setPlan(name: string, policy: UserPolicy): Promise<void> {
    const spec = encodePolicy(policy);
    await storeCall(() => Promise.all(this.keys.all.map((partition) => this.redis.hset(partition.plans, name, spec))));
  }

  async getPlan(name: string): Promise<NamedPlan | undefined> {
    const spec = await storeCall(() => this.redis.hget(this.keys.partition(0).plans, name));
    if (spec !== null) return { name, policy: decodePolicy(spec), fromConfig: false };
    return name === DEFAULT_PLAN ? { name, policy: this.fallback, fromConfig: true } : undefined;
  }

  async deletePlan(name: string): Promise<boolean> {
    const deleted = await storeCall(() =>
      Promise.all(this.keys.all.map((partition) => this.redis.hdel(partition.plans, name))),
    );
    return deleted.some((count) => count > 0);
  }

  async listPlans(): Promise<NamedPlan[]> {
    const stored = await storeCall(() => this.redis.hgetall(this.keys.partition(0).plans));
    const plans = Object.entries(stored).map(([name, spec]) => ({
      name,
      policy: decodePolicy(spec),
      fromConfig: false,
    }));
    if (!(DEFAULT_PLAN in stored)) plans.push({ name: DEFAULT_PLAN, policy: this.fallback, fromConfig: true });
    return plans;
  }

  async setUserPolicy(userId: string, assignment: PolicyAssignment): Promise<void> {
    await storeCall(() => this.redis.hset(this.keys.forUser(userId).policies, userId, encodeAssignment(assignment)));
  }

  async getUserPolicy(userId: string): Promise<PolicyAssignment | undefined> {
    const entry = await storeCall(() => this.redis.hget(this.keys.forUser(userId).policies, userId));
    return entry === null ? undefined : decodeAssignment(entry);
  }

  async deleteUserPolicy(userId: string): Promise<boolean> {
    return (await storeCall(() => this.redis.hdel(this.keys.forUser(userId).policies, userId))) > 0;
  }

  async listUserPolicies(): Promise<{ readonly userId: string; readonly assignment: PolicyAssignment }[]> {
    const partitions = await storeCall(() =>
      Promise.all(this.keys.all.map((partition) => this.redis.hgetall(partition.policies))),
    );
    return partitions.flatMap((entries) =>
      Object.entries(entries).flatMap(([userId, entry]) => {
        const assignment = decodeAssignment(entry);
        return assignment ? [{ userId, assignment }] : [];
      }),
    );
  }

  /** Resolved as lua/includes/policy resolves it, from the user's partition. */
  async effectivePolicy(userId: string): Promise<EffectivePolicy> {
    const partition = this.keys.forUser(userId);
    const [entry, defaultSpec] = await storeCall(() =>
      Promise.all([this.redis.hget(partition.policies, userId), this.redis.hget(partition.plans, DEFAULT_PLAN)]),
    );
    const assignment = entry === null ? undefined : decodeAssignment(entry);
    const given = assignment === undefined ? {} : { assignment };
    if (assignment?.kind === "override") return { policy: assignment.policy, source: "override", ...given };
    if (assignment?.kind === "plan") {
      const spec = await storeCall(() => this.redis.hget(partition.plans, assignment.plan));
      if (spec !== null) return { policy: decodePolicy(spec), source: "plan", plan: assignment.plan, ...given };
    }
    const policy = defaultSpec === null ? this.fallback : decodePolicy(defaultSpec);
    return { policy, source: "default", plan: DEFAULT_PLAN, ...given };
  }

  async getGlobalPolicy(): Promise<GlobalPolicy> {
    const stored = await storeCall(() => this.redis.get(this.keys.global.policy));
    if (stored === null) return { windows: parseSpec(this.global.hostSpec), fromConfig: true };
    return { windows: parseSpec(stored), fromConfig: false };
  }

  async setGlobalPolicy(windows: RatePolicy): Promise<void> {
    await storeCall(() => this.redis.set(this.keys.global.policy, formatRatePolicy(windows)));
  }

  async deleteGlobalPolicy(): Promise<boolean> {
    return (await storeCall(() => this.redis.del(this.keys.global.policy))) > 0;
  }

  async drainState(userId: string, durationsMs: readonly number[]): Promise<DrainState> {
    const policy: RatePolicy = durationsMs.map((durationMs) => ({ limit: 1, durationMs }));
    const partition = this.keys.forUser(userId);
    const [time, queued] = await storeCall(() =>
      Promise.all([this.redis.time(), this.redis.llen(partition.queue(userId))]),
    );
    const now = Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000);
    const windows = await storeCall(() => this.windows.read(userId, now, policy));
    return { now, queued, windows };
  }
}

/** Global windows from a stored spec ("" for none). */
function parseSpec(spec: string): RatePolicy {
  return spec === "" ? [] : parseRatePolicy(spec);
}
