import type { RatePolicy } from "./rate-policy.js";
import type { UserPolicy } from "./user-policy.js";
import type { WindowCounter } from "./start-schedule.js";

// The storage boundary of policies as data: named plans and what each user
// is given. Every host reads them from the store at each start (the Redis
// store resolves them inside its scripts), so a change binds at once
// everywhere, without a restart. src/redis implements it.

/** What a user is given: a plan by name, or an override policy of its own. */
export type PolicyAssignment =
  | { readonly kind: "plan"; readonly plan: string }
  | { readonly kind: "override"; readonly policy: UserPolicy };

/** A plan and where its policy comes from: stored, or (the default plan only) the host's TOLLGATE_RATE_LIMITS. */
export interface NamedPlan {
  readonly name: string;
  readonly policy: UserPolicy;
  readonly fromConfig: boolean;
}

/** A user's effective policy and where it came from. */
export interface EffectivePolicy {
  readonly policy: UserPolicy;
  /**
   * "override": the user's own; "plan": its assigned plan; "default": the
   * plan "default" (no assignment, or one naming a plan that no longer exists).
   */
  readonly source: "override" | "plan" | "default";
  /** The plan the policy is, for "plan" and "default". */
  readonly plan?: string;
  /** What the user is assigned, when anything (it may name a deleted plan). */
  readonly assignment?: PolicyAssignment;
}

/** A user's queue and windows as a dry run needs them. */
export interface DrainState {
  /** The store's clock, ms. */
  readonly now: number;
  /** Tasks in the user's queue. */
  readonly queued: number;
  /** The counters of the windows asked for, in order (keyed by duration, so shared by any policy with that duration). */
  readonly windows: WindowCounter[];
}

/** The global windows (over every user together) and where they come from. */
export interface GlobalPolicy {
  /** Empty: no global limit. */
  readonly windows: RatePolicy;
  /** True while none is stored: the host's TOLLGATE_GLOBAL_LIMITS. */
  readonly fromConfig: boolean;
}

export interface PolicyStore {
  /** Stores a plan (replacing one of that name). */
  setPlan(name: string, policy: UserPolicy): Promise<void>;
  /** A plan; for "default" the host's TOLLGATE_RATE_LIMITS when none is stored. */
  getPlan(name: string): Promise<NamedPlan | undefined>;
  /** Deletes a stored plan; false when there was none. */
  deletePlan(name: string): Promise<boolean>;
  /** Every plan, "default" always among them, in no order. */
  listPlans(): Promise<NamedPlan[]>;
  setUserPolicy(userId: string, assignment: PolicyAssignment): Promise<void>;
  getUserPolicy(userId: string): Promise<PolicyAssignment | undefined>;
  /** Deletes a user's assignment or override; false when there was none. */
  deleteUserPolicy(userId: string): Promise<boolean>;
  /** Every user with an assignment or override, in no order. */
  listUserPolicies(): Promise<{ readonly userId: string; readonly assignment: PolicyAssignment }[]>;
  /** What binds the user now, resolved as the store's scripts resolve it. */
  effectivePolicy(userId: string): Promise<EffectivePolicy>;
  getGlobalPolicy(): Promise<GlobalPolicy>;
  /** Stores the global windows (empty: no global limit, whatever the hosts' setting). */
  setGlobalPolicy(windows: RatePolicy): Promise<void>;
  /** Deletes the stored global windows: each host's TOLLGATE_GLOBAL_LIMITS binds again; false when none was stored. */
  deleteGlobalPolicy(): Promise<boolean>;
  /** The user's queue length and the counters of windows of these durations (ms). */
  drainState(userId: string, durationsMs: readonly number[]): Promise<DrainState>;
}
