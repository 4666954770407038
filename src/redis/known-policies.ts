import type { UserPolicy } from "../core/user-policy.js";
import { decodePolicy } from "./policy-spec.js";

/** Users whose last seen policy is remembered; past it the oldest is forgotten. */
const MAX_USERS = 10_000;

/**
 * The policy each user had when a script last told us: a guess, not the
 * truth. A script must declare a user's window counters before it runs,
 * and they are keyed by the windows' durations, so the caller declares
 * those of the guess; the script resolves the policy itself (every start
 * binds the policy in Redis at that moment) and, when the guess did not
 * cover it, answers with the policy, and the caller runs it again. Nothing
 * here expires: a wrong guess costs one round trip, never a wrong start.
 */
export class KnownPolicies {
  private readonly byUser = new Map<string, UserPolicy>();
  private readonly bySpec = new Map<string, UserPolicy>();
  /** The guess for a user not seen yet: the policy the last such user turned out to have (the default plan, most likely). */
  private unseen: UserPolicy;

  constructor(fallback: UserPolicy) {
    this.unseen = fallback;
  }

  /** The user's policy as last seen, or the guess for a new user. */
  of(userId: string): UserPolicy {
    return this.byUser.get(userId) ?? this.unseen;
  }

  /** Remembers the policy a script found for the user (its spec); returns it. */
  learn(userId: string, spec: string): UserPolicy {
    let policy = this.bySpec.get(spec);
    if (!policy) {
      policy = decodePolicy(spec);
      // Specs are few (plans and overrides); bounded all the same.
      if (this.bySpec.size >= MAX_USERS) this.bySpec.clear();
      this.bySpec.set(spec, policy);
    }
    if (!this.byUser.has(userId)) this.unseen = policy;
    this.byUser.delete(userId);
    this.byUser.set(userId, policy);
    if (this.byUser.size > MAX_USERS) {
      const oldest = this.byUser.keys().next().value;
      if (oldest !== undefined) this.byUser.delete(oldest);
    }
    return policy;
  }
}
