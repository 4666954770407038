import type { PolicyAssignment } from "../core/policy-store.js";
import { formatRatePolicy } from "../core/rate-policy.js";
import { userPolicy, type UserPolicy } from "../core/user-policy.js";

// How a policy is stored: the spec the Lua scripts parse (lua/includes/policy),
// "<limit>/<n><unit>,..." then ";<max running>" when capped, e.g.
// "10/1s,1000/1m;2"; and a user's entry in its partition's policies hash,
// "plan:<name>" or "limits:<spec>" (keys.ts policies()).

export function encodePolicy(policy: UserPolicy): string {
  const windows = formatRatePolicy(policy.windows);
  return policy.maxRunning > 0 ? `${windows};${policy.maxRunning}` : windows;
}

/** The policy of a stored spec. Throws for one no Tollgate wrote. */
export function decodePolicy(spec: string): UserPolicy {
  const [windows = "", maxRunning = ""] = spec.split(";");
  return userPolicy(windows, maxRunning === "" ? 0 : Number(maxRunning));
}

export function encodeAssignment(assignment: PolicyAssignment): string {
  return assignment.kind === "plan" ? `plan:${assignment.plan}` : `limits:${encodePolicy(assignment.policy)}`;
}

/** An assignment of a stored entry; undefined for one no Tollgate wrote. */
export function decodeAssignment(entry: string): PolicyAssignment | undefined {
  if (entry.startsWith("plan:")) return { kind: "plan", plan: entry.slice("plan:".length) };
  if (entry.startsWith("limits:")) return { kind: "override", policy: decodePolicy(entry.slice("limits:".length)) };
  return undefined;
}
