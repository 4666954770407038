import type { Logger } from "../logger.js";
import { authorizePolicyChange, callerName, type Identity } from "./authorization.js";
import { pageSizeOf } from "./list-tasks.js";
import type { EffectivePolicy, NamedPlan, PolicyAssignment, PolicyStore } from "./policy-store.js";
import { notFound, invalidArgument } from "./service-error.js";
import { formatRatePolicy, parseRatePolicy, type RatePolicy } from "./rate-policy.js";
import { nthStartTime, type WindowCounter } from "./start-schedule.js";
import { DEFAULT_PLAN, describePolicy, userPolicy, type UserPolicy } from "./user-policy.js";
import { checkUserId } from "./validation.js";

// The rules of PolicyService, transport-free: admin keys only, what a plan
// name and a policy must look like (each refusal names the field), pages
// by name, the dry run's forecast, and a log line for every change naming
// who made it. Each check throws ServiceError.

/** A policy as a request carries it. */
export interface PolicyInput {
  readonly limits: string;
  /** 0: no cap. */
  readonly maxRunning: number;
}

/** A user's assignment as a request carries it; undefined when the request set neither. */
export type AssignmentInput = { readonly plan: string } | { readonly override: PolicyInput } | undefined;

export interface PolicyRules {
  readonly store: PolicyStore;
  readonly logger: Logger;
}

const PLAN_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const MAX_TOKEN_LENGTH = 1024;

function checkPlanName(name: string, field: string): void {
  if (!PLAN_NAME.test(name)) {
    throw invalidArgument(field, `"${name.slice(0, 64)}" is not a plan name: 1 to 64 letters, digits, "_", "-" or "."`);
  }
}

/** A request's policy, checked: INVALID_ARGUMENT names `<field>.limits` or `<field>.max_running`. */
function policyOf(input: PolicyInput | undefined, field: string): UserPolicy {
  if (input === undefined || input.limits.trim() === "") throw invalidArgument(`${field}.limits`, "is required");
  try {
    userPolicy(input.limits, 0);
  } catch (error) {
    throw invalidArgument(`${field}.limits`, (error as Error).message);
  }
  try {
    return userPolicy(input.limits, input.maxRunning);
  } catch (error) {
    throw invalidArgument(`${field}.max_running`, (error as Error).message);
  }
}

function assignmentOf(input: AssignmentInput): PolicyAssignment {
  if (input === undefined) throw invalidArgument("assignment", "set plan or override");
  if ("plan" in input) {
    checkPlanName(input.plan, "plan");
    return { kind: "plan", plan: input.plan };
  }
  return { kind: "override", policy: policyOf(input.override, "override") };
}

function describeAssignment(assignment: PolicyAssignment): string {
  return assignment.kind === "plan" ? `plan ${assignment.plan}` : `override ${describePolicy(assignment.policy)}`;
}

export async function setPlan(
  rules: PolicyRules,
  caller: Identity,
  name: string,
  input: PolicyInput | undefined,
): Promise<NamedPlan> {
  authorizePolicyChange(caller, "set a plan");
  checkPlanName(name, "name");
  const policy = policyOf(input, "policy");
  await rules.store.setPlan(name, policy);
  rules.logger.info({ by: callerName(caller), plan: name, policy: describePolicy(policy) }, "plan set");
  return { name, policy, fromConfig: false };
}

export async function getPlan(rules: PolicyRules, caller: Identity, name: string): Promise<NamedPlan> {
  authorizePolicyChange(caller, "read a plan");
  checkPlanName(name, "name");
  const plan = await rules.store.getPlan(name);
  if (!plan) throw notFound(`no plan named "${name}"`);
  return plan;
}

export async function deletePlan(rules: PolicyRules, caller: Identity, name: string): Promise<boolean> {
  authorizePolicyChange(caller, "delete a plan");
  checkPlanName(name, "name");
  const deleted = await rules.store.deletePlan(name);
  rules.logger.info({ by: callerName(caller), plan: name, deleted }, "plan deleted");
  return deleted;
}

export async function setUserPolicy(
  rules: PolicyRules,
  caller: Identity,
  userId: string,
  input: AssignmentInput,
): Promise<PolicyAssignment> {
  authorizePolicyChange(caller, "set a user's policy");
  checkUserId(userId);
  const assignment = assignmentOf(input);
  await rules.store.setUserPolicy(userId, assignment);
  rules.logger.info({ by: callerName(caller), userId, policy: describeAssignment(assignment) }, "user policy set");
  return assignment;
}

export async function getUserPolicy(rules: PolicyRules, caller: Identity, userId: string): Promise<EffectivePolicy> {
  authorizePolicyChange(caller, "read a user's policy");
  checkUserId(userId);
  return rules.store.effectivePolicy(userId);
}

export async function deleteUserPolicy(rules: PolicyRules, caller: Identity, userId: string): Promise<boolean> {
  authorizePolicyChange(caller, "delete a user's policy");
  checkUserId(userId);
  const deleted = await rules.store.deleteUserPolicy(userId);
  rules.logger.info({ by: callerName(caller), userId, deleted }, "user policy deleted");
  return deleted;
}

/** When a user's queue would drain under its policy now and under a proposed one. */
export interface DrainForecast {
  /** The assignment proposed, checked. */
  readonly assignment: PolicyAssignment;
  readonly queued: number;
  /** When the last queued task would start; undefined when nothing is queued. */
  readonly lastStartNow: number | undefined;
  readonly lastStartProposed: number | undefined;
  readonly current: UserPolicy;
  readonly proposed: UserPolicy;
}

/**
 * A dry run of setUserPolicy: checked and authorized as the change, nothing
 * changed. The windows are keyed by duration, so the proposed policy starts
 * from the counts its durations hold now (docs/api.md, Policies as data).
 * Every queued task is counted at cost 1, and the cap is not modelled.
 */
export async function forecastUserPolicy(
  rules: PolicyRules,
  caller: Identity,
  userId: string,
  input: AssignmentInput,
): Promise<DrainForecast> {
  authorizePolicyChange(caller, "set a user's policy");
  checkUserId(userId);
  const assignment = assignmentOf(input);
  const current = (await rules.store.effectivePolicy(userId)).policy;
  let proposed: UserPolicy;
  if (assignment.kind === "override") {
    proposed = assignment.policy;
  } else {
    proposed =
      (await rules.store.getPlan(assignment.plan))?.policy ?? (await rules.store.getPlan(DEFAULT_PLAN))!.policy;
  }
  const durations = [...new Set([...current.windows, ...proposed.windows].map((window) => window.durationMs))];
  const state = await rules.store.drainState(userId, durations);
  const counters = (policy: UserPolicy): WindowCounter[] =>
    policy.windows.map((window) => state.windows[durations.indexOf(window.durationMs)] ?? { count: 0, resetAt: null });
  const lastStart = (policy: UserPolicy): number | undefined =>
    state.queued === 0 ? undefined : nthStartTime(policy.windows, counters(policy), state.now, state.queued);
  return {
    assignment,
    queued: state.queued,
    lastStartNow: lastStart(current),
    lastStartProposed: lastStart(proposed),
    current,
    proposed,
  };
}

/** A page of `items` in name order after the token's name, and the next token. */
function pageByName<T>(
  items: readonly T[],
  nameOf: (item: T) => string,
  list: "plans" | "users",
  pageSize: number,
  pageToken: string,
): { readonly items: T[]; readonly nextPageToken: string } {
  const after = pageToken === "" ? undefined : decodeNameToken(pageToken, list);
  const sorted = items
    .filter((item) => after === undefined || nameOf(item) > after)
    .sort((a, b) => (nameOf(a) < nameOf(b) ? -1 : nameOf(a) > nameOf(b) ? 1 : 0));
  const size = pageSizeOf(pageSize);
  const page = sorted.slice(0, size);
  const last = page.at(-1);
  return {
    items: page,
    nextPageToken:
      sorted.length > size && last !== undefined
        ? Buffer.from(JSON.stringify({ v: 1, l: list, a: nameOf(last) }), "utf8").toString("base64url")
        : "",
  };
}

function decodeNameToken(text: string, list: "plans" | "users"): string {
  const malformed = invalidArgument(
    "page_token",
    "is not a page token of this listing; pass next_page_token from the page before unchanged, or none for the first page",
  );
  if (!/^[A-Za-z0-9_-]+$/.test(text) || text.length > MAX_TOKEN_LENGTH) throw malformed;
  let token: unknown;
  try {
    token = JSON.parse(Buffer.from(text, "base64url").toString("utf8"));
  } catch {
    throw malformed;
  }
  if (typeof token !== "object" || token === null) throw malformed;
  const { v, l, a } = token as Record<string, unknown>;
  if (v !== 1 || l !== list || typeof a !== "string") throw malformed;
  return a;
}

export async function listPlans(
  rules: PolicyRules,
  caller: Identity,
  page: { readonly pageSize: number; readonly pageToken: string },
): Promise<{ readonly items: NamedPlan[]; readonly nextPageToken: string }> {
  authorizePolicyChange(caller, "list plans");
  // Checked before the read, so a bad token reads nothing.
  if (page.pageToken !== "") decodeNameToken(page.pageToken, "plans");
  return pageByName(await rules.store.listPlans(), (plan) => plan.name, "plans", page.pageSize, page.pageToken);
}

export async function listUserPolicies(
  rules: PolicyRules,
  caller: Identity,
  page: { readonly pageSize: number; readonly pageToken: string },
): Promise<{
  readonly items: { readonly userId: string; readonly assignment: PolicyAssignment }[];
  readonly nextPageToken: string;
}> {
  authorizePolicyChange(caller, "list users' policies");
  if (page.pageToken !== "") decodeNameToken(page.pageToken, "users");
  return pageByName(
    await rules.store.listUserPolicies(),
    (entry) => entry.userId,
    "users",
    page.pageSize,
    page.pageToken,
  );
}

/** The global windows as PolicyService answers them: "none" for no global limit. */
export interface GlobalLimitsAnswer {
  readonly limits: string;
  readonly fromConfig: boolean;
}

function globalAnswer(windows: RatePolicy, fromConfig: boolean): GlobalLimitsAnswer {
  return { limits: windows.length === 0 ? "none" : formatRatePolicy(windows), fromConfig };
}

export async function setGlobalLimits(
  rules: PolicyRules,
  caller: Identity,
  limits: string,
): Promise<GlobalLimitsAnswer> {
  authorizePolicyChange(caller, "set the global limits");
  const text = limits.trim();
  if (text === "") throw invalidArgument("limits", 'is required: windows like "100/1s", or "none"');
  let windows: RatePolicy;
  try {
    windows = text === "none" ? [] : parseRatePolicy(text);
  } catch (error) {
    throw invalidArgument("limits", (error as Error).message);
  }
  await rules.store.setGlobalPolicy(windows);
  const answer = globalAnswer(windows, false);
  rules.logger.info({ by: callerName(caller), limits: answer.limits }, "global limits set");
  return answer;
}

export async function getGlobalLimits(rules: PolicyRules, caller: Identity): Promise<GlobalLimitsAnswer> {
  authorizePolicyChange(caller, "read the global limits");
  const global = await rules.store.getGlobalPolicy();
  return globalAnswer(global.windows, global.fromConfig);
}

export async function deleteGlobalLimits(rules: PolicyRules, caller: Identity): Promise<boolean> {
  authorizePolicyChange(caller, "delete the global limits");
  const deleted = await rules.store.deleteGlobalPolicy();
  rules.logger.info({ by: callerName(caller), deleted }, "global limits deleted");
  return deleted;
}
