// PolicyService's rules without a transport or Redis: admin keys only, every
// refusal naming its field, every change logged with the key that made it,
// pages by name, and the dry run's forecast from the windows' state; and the
// stored form of a policy.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import pino from "pino";
import type { Identity } from "../../src/core/authorization.js";
import type {
  DrainState,
  EffectivePolicy,
  NamedPlan,
  PolicyAssignment,
  PolicyStore,
} from "../../src/core/policy-store.js";
import {
  deletePlan,
  forecastUserPolicy,
  getPlan,
  listPlans,
  setPlan,
  setUserPolicy,
  type PolicyRules,
} from "../../src/core/policies.js";
import { ServiceError, StatusCode } from "../../src/core/service-error.js";
import type { RatePolicy } from "../../src/core/rate-policy.js";
import { DEFAULT_PLAN, userPolicy, type UserPolicy } from "../../src/core/user-policy.js";
import { decodeAssignment, decodePolicy, encodeAssignment, encodePolicy } from "../../src/redis/policy-spec.js";
import { KnownPolicies } from "../../src/redis/known-policies.js";

const ADMIN: Identity = { kind: "admin", keyId: "0123456789ab" };
const USER: Identity = { kind: "user", userId: "alice" };

/** Plans and assignments in maps, and a drain state the test sets. */
class MemoryPolicies implements PolicyStore {
  readonly plans = new Map<string, UserPolicy>();
  readonly users = new Map<string, PolicyAssignment>();
  drain: DrainState = { now: 0, queued: 0, windows: [] };
  asked: readonly number[] = [];
  constructor(readonly fallback: UserPolicy) {}
  async setPlan(name: string, policy: UserPolicy) {
    this.plans.set(name, policy);
  }
  async getPlan(name: string): Promise<NamedPlan | undefined> {
    const policy = this.plans.get(name);
    if (policy) return { name, policy, fromConfig: false };
    return name === DEFAULT_PLAN ? { name, policy: this.fallback, fromConfig: true } : undefined;
  }
  async deletePlan(name: string) {
    return this.plans.delete(name);
  }
  async listPlans() {
    const plans = [...this.plans].map(([name, policy]) => ({ name, policy, fromConfig: false }));
    if (!this.plans.has(DEFAULT_PLAN)) plans.push({ name: DEFAULT_PLAN, policy: this.fallback, fromConfig: true });
    return plans;
  }
  async setUserPolicy(userId: string, assignment: PolicyAssignment) {
    this.users.set(userId, assignment);
  }
  async getUserPolicy(userId: string) {
    return this.users.get(userId);
  }
  async deleteUserPolicy(userId: string) {
    return this.users.delete(userId);
  }
  async listUserPolicies() {
    return [...this.users].map(([userId, assignment]) => ({ userId, assignment }));
  }
  async effectivePolicy(userId: string): Promise<EffectivePolicy> {
    const assignment = this.users.get(userId);
    if (assignment?.kind === "override") return { policy: assignment.policy, source: "override", assignment };
    const plan = assignment?.kind === "plan" ? this.plans.get(assignment.plan) : undefined;
    if (plan && assignment?.kind === "plan") return { policy: plan, source: "plan", plan: assignment.plan, assignment };
    return { policy: this.plans.get(DEFAULT_PLAN) ?? this.fallback, source: "default", plan: DEFAULT_PLAN };
  }
  global: RatePolicy | undefined;
  async getGlobalPolicy() {
    return { windows: this.global ?? [], fromConfig: this.global === undefined };
  }
  async setGlobalPolicy(windows: RatePolicy) {
    this.global = windows;
  }
  async deleteGlobalPolicy() {
    const had = this.global !== undefined;
    this.global = undefined;
    return had;
  }
  async drainState(_userId: string, durationsMs: readonly number[]) {
    this.asked = durationsMs;
    return this.drain;
  }
}

function rules(): { rules: PolicyRules; store: MemoryPolicies; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line)) });
  const store = new MemoryPolicies(userPolicy("1/1s,20/1m"));
  return { rules: { store, logger }, store, lines };
}

async function refusal(call: Promise<unknown>): Promise<ServiceError> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof ServiceError, String(error));
    return error;
  }
  assert.fail("no refusal");
}

describe("PolicyService's rules", () => {
  test("a user's key may neither change nor read policies, and nothing is stored or logged", async () => {
    const { rules: r, store, lines } = rules();
    for (const call of [
      setPlan(r, USER, "pro", { limits: "10/1s", maxRunning: 0 }),
      getPlan(r, USER, "pro"),
      deletePlan(r, USER, "pro"),
      listPlans(r, USER, { pageSize: 0, pageToken: "" }),
      setUserPolicy(r, USER, "alice", { override: { limits: "100/1s", maxRunning: 0 } }),
    ]) {
      assert.equal((await refusal(call)).code, StatusCode.PERMISSION_DENIED);
    }
    assert.equal(store.plans.size + store.users.size, 0);
    assert.deepEqual(lines, []);
  });

  test("every change is logged with the admin key that made it (a fingerprint, never the key)", async () => {
    const { rules: r, lines } = rules();
    await setPlan(r, ADMIN, "pro", { limits: "10/1s,1000/1m", maxRunning: 2 });
    await setUserPolicy(r, ADMIN, "vip", { plan: "pro" });
    await setUserPolicy(r, { kind: "anyone" }, "free", { override: { limits: "1/1s", maxRunning: 0 } });
    await deletePlan(r, ADMIN, "pro");
    assert.deepEqual(
      lines.map((line) => [line.msg, line.by]),
      [
        ["plan set", "admin key sha256:0123456789ab"],
        ["user policy set", "admin key sha256:0123456789ab"],
        ["user policy set", "anyone (auth off)"],
        ["plan deleted", "admin key sha256:0123456789ab"],
      ],
    );
    assert.equal(lines[0]!.policy, "10/1s,1000/1m, max running 2");
    assert.equal(lines[1]!.policy, "plan pro");
  });

  test("a malformed policy or name is INVALID_ARGUMENT naming the field", async () => {
    const { rules: r } = rules();
    const cases: [Promise<unknown>, RegExp][] = [
      [setPlan(r, ADMIN, "pro", { limits: "10 per second", maxRunning: 0 }), /^policy\.limits: /],
      [setPlan(r, ADMIN, "pro", undefined), /^policy\.limits: is required/],
      [setPlan(r, ADMIN, "pro", { limits: "1/1s,2/1s", maxRunning: 0 }), /^policy\.limits: two windows/],
      [setPlan(r, ADMIN, "pro", { limits: "1/1s", maxRunning: 2_000_000 }), /^policy\.max_running: /],
      [setPlan(r, ADMIN, "", { limits: "1/1s", maxRunning: 0 }), /^name: /],
      [setUserPolicy(r, ADMIN, "u", { override: { limits: "0/1s", maxRunning: 0 } }), /^override\.limits: /],
      [setUserPolicy(r, ADMIN, "u", { plan: "has space" }), /^plan: /],
      [setUserPolicy(r, ADMIN, "", { plan: "pro" }), /^user_id: is required/],
      [setUserPolicy(r, ADMIN, "u", undefined), /^assignment: /],
      [listPlans(r, ADMIN, { pageSize: 0, pageToken: "garbage!" }), /^page_token: /],
    ];
    for (const [call, message] of cases) {
      const error = await refusal(call);
      assert.equal(error.code, StatusCode.INVALID_ARGUMENT, error.message);
      assert.match(error.message, message);
    }
  });

  test("plans list by name, a page at a time, the default among them", async () => {
    const { rules: r } = rules();
    for (const name of ["c", "a", "b"]) await setPlan(r, ADMIN, name, { limits: "1/1s", maxRunning: 0 });
    const first = await listPlans(r, ADMIN, { pageSize: 3, pageToken: "" });
    assert.deepEqual(
      first.items.map((plan) => plan.name),
      ["a", "b", "c"],
    );
    const second = await listPlans(r, ADMIN, { pageSize: 3, pageToken: first.nextPageToken });
    assert.deepEqual(
      second.items.map((plan) => [plan.name, plan.fromConfig]),
      [["default", true]],
    );
    assert.equal(second.nextPageToken, "");
  });

  test("a dry run forecasts the last queued start under both policies from the same windows, and stores nothing", async () => {
    const { rules: r, store } = rules();
    // 4 queued; the 1 s window is full until 500, the minute has 5 of 20 until 60 000.
    store.drain = {
      now: 0,
      queued: 4,
      windows: [
        { count: 1, resetAt: 500 },
        { count: 5, resetAt: 60_000 },
      ],
    };
    const forecast = await forecastUserPolicy(r, ADMIN, "u", { override: { limits: "10/1s", maxRunning: 0 } });
    assert.deepEqual(store.asked, [1_000, 60_000], "the durations of both policies, each once");
    // Now: starts at 500, 1500, 2500, 3500. Proposed 10/1s: the open second holds 1, so all 4 fit at 0.
    assert.equal(forecast.lastStartNow, 3_500);
    assert.equal(forecast.lastStartProposed, 0);
    assert.equal(store.users.size, 0);
  });
});

describe("how a policy is stored", () => {
  test("specs and assignments round-trip", () => {
    const capped = userPolicy("10/1s,1000/1m,5000/1d", 3);
    assert.equal(encodePolicy(capped), "10/1s,1000/1m,5000/1d;3");
    assert.deepEqual(decodePolicy(encodePolicy(capped)), capped);
    assert.equal(encodePolicy(userPolicy("2/90s")), "2/90s");
    for (const assignment of [
      { kind: "plan", plan: "pro" },
      { kind: "override", policy: capped },
    ] as const) {
      assert.deepEqual(decodeAssignment(encodeAssignment(assignment)), assignment);
    }
    assert.equal(decodeAssignment("something else"), undefined);
  });

  test("a user's policy is guessed from what a script last said, and a new user gets the last new user's", () => {
    const known = new KnownPolicies(userPolicy("1/1s"));
    assert.equal(encodePolicy(known.of("a")), "1/1s");
    known.learn("a", "5/1s");
    assert.equal(encodePolicy(known.of("a")), "5/1s");
    assert.equal(encodePolicy(known.of("b")), "5/1s", "a new user's guess is the last new user's policy");
    known.learn("a", "7/1s");
    assert.equal(encodePolicy(known.of("b")), "5/1s", "a known user's change is not a new user's guess");
  });
});
