import { formatRatePolicy, parseRatePolicy, type RatePolicy } from "./rate-policy.js";

/**
 * What binds one user: its rate windows and an optional cap on its tasks
 * running at once, across every host. A plan is a named one; a user is
 * assigned a plan, or has an override of its own, or gets the plan
 * "default" (TOLLGATE_RATE_LIMITS until one is stored).
 */
export interface UserPolicy {
  readonly windows: RatePolicy;
  /** Tasks of the user running at once, at most; 0: no cap. */
  readonly maxRunning: number;
}

/** The plan every user without an assignment or override gets. */
export const DEFAULT_PLAN = "default";

/** Most tasks a plan may let run at once (a sanity bound, not a design limit). */
const MAX_RUNNING_LIMIT = 1_000_000;

/** A policy from "10/1s,1000/1m" and a cap (0: none). Throws an Error naming what is wrong. */
export function userPolicy(limits: string, maxRunning = 0): UserPolicy {
  if (!Number.isSafeInteger(maxRunning) || maxRunning < 0 || maxRunning > MAX_RUNNING_LIMIT) {
    throw new Error(`max running must be a whole number from 0 (no cap) to ${MAX_RUNNING_LIMIT}`);
  }
  return Object.freeze({ windows: parseRatePolicy(limits), maxRunning });
}

/** "10/1s,1000/1m", with ", max running 2" when capped: for logs and the CLI. */
export function describePolicy(policy: UserPolicy): string {
  const windows = formatRatePolicy(policy.windows);
  return policy.maxRunning > 0 ? `${windows}, max running ${policy.maxRunning}` : windows;
}
