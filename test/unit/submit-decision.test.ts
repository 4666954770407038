// Submit's decision in the core, with a fake store and a fake runner: what
// it validates, who it lets submit, how it holds and spends a runner slot
// across the admit, and what it answers for each admission.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Identity } from "../../src/core/authorization.js";
import type { Clock } from "../../src/core/clock.js";
import { parseRatePolicy } from "../../src/core/rate-policy.js";
import { ServiceError, StatusCode } from "../../src/core/service-error.js";
import { AdmitReplyLost, type Admission, type Submission } from "../../src/core/store.js";
import { decideSubmit, type SubmitCommand, type SubmitRules, type SlotRunner } from "../../src/core/submit.js";
import type { StartedTask } from "../../src/core/task-runner.js";

const NOW = 1_000_000;
const TASK_ID = "0.AAAAAAAAAAAAAAAAAAAAAA";
const policy = parseRatePolicy("1/1s,20/1m");

/** Answers admit with what the test scripts, and records the submissions. */
class FakeStore {
  readonly submissions: Submission[] = [];
  constructor(private readonly answer: (submission: Submission) => Promise<Admission>) {}
  admit(submission: Submission): Promise<Admission> {
    this.submissions.push(submission);
    return this.answer(submission);
  }
}

/** A runner with `free` slots that records what Submit does with them. */
class FakeRunner implements SlotRunner {
  reserved = 0;
  readonly calls: string[] = [];
  readonly started: { task: StartedTask; reserved: boolean }[] = [];
  constructor(private free = 1) {}
  reserve(): boolean {
    if (this.free === 0) {
      this.calls.push("reserve: none free");
      return false;
    }
    this.free--;
    this.reserved++;
    this.calls.push("reserve");
    return true;
  }
  release(): void {
    this.free++;
    this.reserved--;
    this.calls.push("release");
  }
  start(task: StartedTask, reserved = false): void {
    if (reserved) this.reserved--;
    this.started.push({ task, reserved });
    this.calls.push("start");
  }
}

async function started(submission: Submission): Promise<Admission> {
  assert.ok(submission.canStartNow, "the store starts a task only into a reserved slot");
  return {
    outcome: "started",
    taskId: TASK_ID,
    now: NOW,
    windows: [
      { count: 1, resetAt: NOW + 1_000 },
      { count: 1, resetAt: NOW + 60_000 },
    ],
  };
}

function setup(answer: (submission: Submission) => Promise<Admission> = started, freeSlots = 1) {
  const store = new FakeStore(answer);
  const runner = new FakeRunner(freeSlots);
  const rules: SubmitRules = { store, runner, policy, kinds: new Set(["email"]), maxPayloadBytes: 16 };
  return { store, runner, rules };
}

/** A clock standing at NOW. */
function fakeClock(): Clock {
  return { now: () => NOW, setTimer: () => () => {} };
}

const ANYONE: Identity = { kind: "anyone" };
const ALICE: Identity = { kind: "user", userId: "alice" };
const ADMIN: Identity = { kind: "admin" };

function command(fields: Partial<SubmitCommand> = {}): SubmitCommand {
  return { userId: "alice", payload: new Uint8Array(), kind: "", idempotencyKey: "", overLimit: "queue", ...fields };
}

async function refusal(promise: Promise<unknown>): Promise<ServiceError> {
  const error = await promise.then(
    () => assert.fail("expected a refusal"),
    (error: unknown) => error,
  );
  assert.ok(error instanceof ServiceError, `expected a ServiceError, got ${String(error)}`);
  return error;
}

describe("Submit's decision", () => {
  test("invalid fields: INVALID_ARGUMENT naming the field; nothing reserved or stored", async () => {
    const cases: [Partial<SubmitCommand>, RegExp][] = [
      [{ userId: "" }, /^user_id: is required/],
      [{ userId: "a".repeat(129) }, /^user_id: is 129 bytes long/],
      [{ userId: "a\u0007b" }, /^user_id: contains the control character U\+0007/],
      [{ payload: new Uint8Array(17) }, /^payload: is 17 bytes; the limit is 16/],
      [{ kind: "not a name" }, /^kind: .* is not a handler name/],
      [{ idempotencyKey: "k".repeat(129) }, /^idempotency_key: is 129 bytes long/],
      [{ overLimit: { unknown: 7 } }, /^over_limit: unknown value 7; use QUEUE or REJECT/],
    ];
    for (const [fields, message] of cases) {
      const { store, runner, rules } = setup();
      const error = await refusal(decideSubmit(rules, ANYONE, command(fields)));
      assert.equal(error.code, StatusCode.INVALID_ARGUMENT, JSON.stringify(fields));
      assert.match(error.message, message);
      assert.deepEqual(store.submissions, []);
      assert.deepEqual(runner.calls, []);
    }
  });

  test("a kind no handler here runs queues for the workers of that kind, taking no slot here", async () => {
    const { store, runner, rules } = setup(async () => ({
      outcome: "queued",
      taskId: TASK_ID,
      position: 1,
      now: NOW,
      windows: [],
      policy: { windows: policy, maxRunning: 0 },
    }));
    const decision = await decideSubmit(rules, ANYONE, command({ kind: "sms" }));
    assert.equal(decision.outcome, "queued");
    assert.equal(store.submissions[0]!.canStartNow, false);
    assert.deepEqual(runner.calls, []);
  });

  test("with known kinds required, a kind nothing runs is INVALID_ARGUMENT naming those that run", async () => {
    const { store, rules } = setup();
    const strict: SubmitRules = { ...rules, knownKinds: async () => new Set(["email", "resize"]) };
    const error = await refusal(decideSubmit(strict, ANYONE, command({ kind: "sms" })));
    assert.equal(error.code, StatusCode.INVALID_ARGUMENT);
    assert.match(error.message, /^kind: no handler or connected worker runs kind "sms"; known: email, resize/);
    assert.deepEqual(store.submissions, []);
    await decideSubmit(strict, ANYONE, command({ kind: "email" }));
    assert.equal(store.submissions.length, 1);
  });

  test("an empty user_id means the key's user; an admin or anyone must name one", async () => {
    const { store, rules } = setup();
    await decideSubmit(rules, ALICE, command({ userId: "" }));
    assert.equal(store.submissions[0]!.userId, "alice");
    for (const caller of [ADMIN, ANYONE]) {
      const error = await refusal(decideSubmit(setup().rules, caller, command({ userId: "" })));
      assert.equal(error.code, StatusCode.INVALID_ARGUMENT);
      assert.match(error.message, /^user_id: is required/);
    }
  });

  test("a user's key submitting for another user: PERMISSION_DENIED, nothing reserved or stored", async () => {
    const { store, runner, rules } = setup();
    const error = await refusal(decideSubmit(rules, ALICE, command({ userId: "bob" })));
    assert.equal(error.code, StatusCode.PERMISSION_DENIED);
    assert.match(error.message, /acts for user "alice" only; it may not submit for user "bob"/);
    assert.deepEqual(store.submissions, []);
    assert.deepEqual(runner.calls, []);
    // An admin may.
    await decideSubmit(setup().rules, ADMIN, command({ userId: "bob" }));
  });

  test("STARTED: the task starts on the runner in the reserved slot, with the estimate and the windows", async () => {
    const { store, runner, rules } = setup();
    const payload = new Uint8Array([1, 2, 3]);
    const decision = await decideSubmit(rules, ALICE, command({ payload, kind: "email" }));
    assert.equal(store.submissions[0]!.canStartNow, true);
    assert.deepEqual(runner.calls, ["reserve", "start"]);
    assert.deepEqual(runner.started, [
      { task: { taskId: TASK_ID, userId: "alice", kind: "email", payload, attempt: 1 }, reserved: true },
    ]);
    assert.equal(runner.reserved, 0, "the reserved slot is the one the task runs in");
    assert.deepEqual(decision, {
      outcome: "started",
      taskId: TASK_ID,
      estimatedStart: NOW,
      windows: [
        { limit: 1, durationMs: 1_000, remaining: 0, resetAt: NOW + 1_000 },
        { limit: 20, durationMs: 60_000, remaining: 19, resetAt: NOW + 60_000 },
      ],
    });
  });

  test("QUEUED: the slot is given back; the estimate is when the policy lets it start", async () => {
    const { runner, rules } = setup(async () => ({
      outcome: "queued",
      taskId: TASK_ID,
      position: 2,
      now: NOW,
      windows: [
        { count: 1, resetAt: NOW + 400 },
        { count: 1, resetAt: NOW + 60_000 },
      ],
    }));
    const decision = await decideSubmit(rules, ALICE, command());
    assert.deepEqual(runner.calls, ["reserve", "release"]);
    assert.deepEqual(runner.started, []);
    // The 1/1s window reopens at +400 for the first queued task, +1400 for the second.
    assert.equal(decision.outcome, "queued");
    assert.equal(decision.outcome === "queued" && decision.estimatedStart, NOW + 1_400);
  });

  test("no free slot: the store is told it cannot start now, and nothing is released", async () => {
    const { store, runner, rules } = setup(
      async () => ({ outcome: "queued", taskId: TASK_ID, position: 1, now: NOW, windows: [] }),
      0,
    );
    await decideSubmit(rules, ALICE, command());
    assert.equal(store.submissions[0]!.canStartNow, false);
    assert.deepEqual(runner.calls, ["reserve: none free"]);
  });

  test("over the limit in REJECT mode: RESOURCE_EXHAUSTED with the time until a start is allowed", async () => {
    const { store, runner, rules } = setup(async () => ({
      outcome: "over-limit",
      queued: 0,
      now: NOW,
      windows: [
        { count: 1, resetAt: NOW + 400 },
        { count: 5, resetAt: NOW + 60_000 },
      ],
    }));
    const error = await refusal(decideSubmit(rules, ALICE, command({ overLimit: "reject" })));
    assert.equal(store.submissions[0]!.rejectOverLimit, true);
    assert.equal(error.code, StatusCode.RESOURCE_EXHAUSTED);
    assert.match(error.message, /over the rate limit and over_limit is REJECT; nothing was stored/);
    assert.equal(error.retryAfterMs, 400);
    assert.deepEqual(runner.calls, ["reserve", "release"]);
    assert.equal(runner.reserved, 0);
  });

  test("over the limit with tasks queued: the retry waits for them too", async () => {
    const { rules } = setup(async () => ({
      outcome: "over-limit",
      queued: 2,
      now: NOW,
      windows: [
        { count: 1, resetAt: NOW + 400 },
        { count: 5, resetAt: NOW + 60_000 },
      ],
    }));
    const error = await refusal(decideSubmit(rules, ALICE, command({ overLimit: "reject" })));
    assert.match(error.message, /with 2 tasks queued/);
    // Starts at +400 and +1400 for the queued two; the new one at +2400.
    assert.equal(error.retryAfterMs, 2_400);
  });

  test("backlog full: RESOURCE_EXHAUSTED until the head of the queue starts", async () => {
    const { runner, rules } = setup(async () => ({
      outcome: "backlog-full",
      queued: 3,
      now: NOW,
      windows: [
        { count: 1, resetAt: NOW + 250 },
        { count: 5, resetAt: NOW + 60_000 },
      ],
    }));
    const error = await refusal(decideSubmit(rules, ALICE, command()));
    assert.equal(error.code, StatusCode.RESOURCE_EXHAUSTED);
    assert.match(error.message, /backlog is full \(3 tasks queued\)/);
    assert.equal(error.retryAfterMs, 250);
    assert.deepEqual(runner.calls, ["reserve", "release"]);
  });

  test("REJECT while the queue is paused: RESOURCE_EXHAUSTED saying so, without a time to retry; the slot is given back", async () => {
    const { runner, rules } = setup(async () => ({ outcome: "paused", queued: 4, now: NOW }));
    const error = await refusal(decideSubmit(rules, ALICE, command({ overLimit: "reject" })));
    assert.equal(error.code, StatusCode.RESOURCE_EXHAUSTED);
    assert.match(error.message, /queue is paused/);
    assert.equal(error.retryAfterMs, undefined, "nobody knows when it resumes");
    assert.deepEqual(runner.calls, ["reserve", "release"]);
  });

  test("DUPLICATE: the first task's id; the slot is given back", async () => {
    const { runner, rules } = setup(async () => ({ outcome: "duplicate", taskId: TASK_ID, now: NOW }));
    assert.deepEqual(await decideSubmit(rules, ALICE, command({ idempotencyKey: "k" })), {
      outcome: "duplicate",
      taskId: TASK_ID,
    });
    assert.deepEqual(runner.calls, ["reserve", "release"]);
  });

  test("a lost reply whose task turns out started by this admit: the slot stays held until then, and the task runs in it", async () => {
    // The store's reply was lost and it read the task's record: started by
    // this admit, at the time it was started.
    let slotsHeldWhileReading: number | undefined;
    const { runner, rules } = setup(async (submission) => {
      await new Promise((resolve) => setImmediate(resolve));
      slotsHeldWhileReading = runner.reserved;
      assert.ok(submission.canStartNow);
      return { outcome: "started", taskId: TASK_ID, now: NOW - 2_000, windows: [{ count: 1, resetAt: NOW - 1_000 }] };
    });
    const decision = await decideSubmit(rules, ALICE, command());
    assert.equal(slotsHeldWhileReading, 1, "the slot is held while the outcome is read");
    assert.deepEqual(runner.calls, ["reserve", "start"]);
    assert.deepEqual(
      runner.started.map(({ task, reserved }) => [task.taskId, task.attempt, reserved]),
      [[TASK_ID, 1, true]],
    );
    assert.equal(decision.outcome === "started" && decision.estimatedStart, NOW - 2_000);
  });

  test("a lost reply whose outcome stays unknown, or showed nothing stored: the error goes up, the slot back, nothing starts", async () => {
    for (const stored of ["unknown", "no"] as const) {
      const lost = new AdmitReplyLost(TASK_ID, stored, new Error("Command timed out"));
      const { runner, rules } = setup(async () => Promise.reject(lost));
      await assert.rejects(decideSubmit(rules, ALICE, command()), (error) => error === lost);
      assert.deepEqual(runner.calls, ["reserve", "release"]);
      assert.deepEqual(runner.started, []);
      assert.equal(runner.reserved, 0);
    }
  });

  test("a store error without a reserved slot releases nothing", async () => {
    const { runner, rules } = setup(async () => Promise.reject(new Error("Connection is closed.")), 0);
    await assert.rejects(decideSubmit(rules, ALICE, command()), /Connection is closed/);
    assert.deepEqual(runner.calls, ["reserve: none free"]);
  });

  test("not_before and start_by, judged by the injected clock: INVALID_ARGUMENT naming the field, nothing stored", async () => {
    const DAY = 24 * 3_600_000;
    const cases: [Partial<SubmitCommand>, RegExp][] = [
      [{ notBefore: NOW + 30 * DAY + 1 }, /^not_before: .* more than 30 days ahead/],
      [{ startBy: NOW }, /^start_by: .* already past/],
      [{ startBy: NOW - 1 }, /^start_by: .* already past/],
      [{ notBefore: NOW + 2_000, startBy: NOW + 1_000 }, /^start_by: is earlier than not_before/],
      [{ notBefore: Number.NaN }, /^not_before: is not a valid time/],
    ];
    for (const [fields, message] of cases) {
      const { store, runner, rules } = setup();
      const error = await refusal(decideSubmit({ ...rules, clock: fakeClock() }, ALICE, command(fields)));
      assert.equal(error.code, StatusCode.INVALID_ARGUMENT, JSON.stringify(fields));
      assert.match(error.message, message);
      assert.deepEqual(store.submissions, []);
      assert.deepEqual(runner.calls, []);
    }
  });

  test("a delayed task: the store is told its moment, and the estimate is never before it", async () => {
    const queued = async (): Promise<Admission> => ({
      outcome: "queued",
      taskId: TASK_ID,
      position: 1,
      now: NOW,
      windows: [
        { count: 0, resetAt: null },
        { count: 0, resetAt: null },
      ],
    });
    const { store, rules } = setup(queued);
    const decision = await decideSubmit(
      { ...rules, clock: fakeClock() },
      ALICE,
      command({ notBefore: NOW + 5_000, startBy: NOW + 9_000 }),
    );
    assert.equal(store.submissions[0]!.notBefore, NOW + 5_000);
    assert.equal(store.submissions[0]!.startBy, NOW + 9_000);
    assert.equal(decision.outcome, "queued");
    assert.equal((decision as { estimatedStart: number }).estimatedStart, NOW + 5_000);
    // A not_before not in the future is now: the store is told no delay.
    const past = setup(queued);
    await decideSubmit({ ...past.rules, clock: fakeClock() }, ALICE, command({ notBefore: NOW - 1 }));
    assert.equal(past.store.submissions[0]!.notBefore, undefined);
  });
});
