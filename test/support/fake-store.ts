// A TaskStore test double for the unit tier: no I/O, every call recorded, and
// the calls whose timing matters (claim, snapshot, subscribe) answered when
// the test says so. Not a second backend: it stores nothing.
import type {
  AttemptResult,
  AvailabilityListener,
  Claimer,
  CancelListener,
  ClaimResult,
  DeadLetterResult,
  DeadLetterSelection,
  FinishOutcome,
  HeldTask,
  ListOptions,
  ListPage,
  ListState,
  ProgressListener,
  LeasedTask,
  QueueSnapshot,
  QueueSummary,
  ReleaseOutcome,
  TaskStore,
  Unsubscribe,
  Wake,
  WakeListener,
} from "../../src/core/store.js";

/** A promise the test settles. */
export class Deferred<T> {
  readonly promise: Promise<T>;
  resolve!: (value: T) => void;
  reject!: (error: unknown) => void;
  /** Whether resolve or reject was called: what is still in flight. */
  settled = false;

  constructor() {
    this.promise = new Promise<T>((resolve, reject) => {
      this.resolve = (value) => {
        this.settled = true;
        resolve(value);
      };
      this.reject = (error) => {
        this.settled = true;
        reject(error);
      };
    });
  }
}

export interface PendingClaim extends Deferred<ClaimResult> {
  readonly partition: number;
  readonly maxClaims: number;
  readonly claimId: string;
  readonly claimer: Claimer | undefined;
}

export interface FakeStoreOptions {
  /** TaskStore.partitions; 1 unless a test spreads users over more. */
  readonly partitions?: number;
}

export interface PendingSnapshot extends Deferred<QueueSnapshot> {
  readonly userId: string;
}

export class FakeStore implements TaskStore {
  readonly partitions: number;
  /** Claims asked for, oldest first; each waits until the test settles it. */
  readonly claims: PendingClaim[] = [];
  /** Snapshot reads asked for ("" for every queue), oldest first. */
  readonly snapshots: PendingSnapshot[] = [];
  /** What claimedBy answers, by claim id (nothing when absent). */
  readonly claimedByAnswers = new Map<string, HeldTask[]>();
  readonly claimedByAsked: { readonly partition: number; readonly claimId: string }[] = [];
  readonly released: HeldTask[] = [];
  /** Subscribed wake listeners. */
  readonly wakeListeners = new Set<WakeListener>();
  readonly progressListeners = new Set<ProgressListener>();
  /** onProgress calls, and what the next ones answer (subscribed when empty). */
  progressSubscribes = 0;
  readonly progressSubscribeAnswers: Deferred<void>[] = [];

  constructor(options: FakeStoreOptions = {}) {
    this.partitions = options.partitions ?? 1;
  }

  admit(): never {
    throw new Error("FakeStore: admit is not faked");
  }

  claim(partition: number, maxClaims: number, claimId: string, claimer?: Claimer): Promise<ClaimResult> {
    const pending = Object.assign(new Deferred<ClaimResult>(), { partition, maxClaims, claimId, claimer });
    this.claims.push(pending);
    return pending.promise;
  }

  /** Claims not answered yet, oldest first. */
  inFlightClaims(): PendingClaim[] {
    return this.claims.filter((claim) => !claim.settled);
  }

  async claimedBy(partition: number, claimId: string): Promise<HeldTask[]> {
    this.claimedByAsked.push({ partition, claimId });
    return this.claimedByAnswers.get(claimId) ?? [];
  }

  /** finish calls, oldest first; each answers "succeeded" or "retry-scheduled" by its result. */
  readonly finished: { readonly task: HeldTask; readonly result: AttemptResult }[] = [];

  async finish(task: HeldTask, result: AttemptResult): Promise<FinishOutcome> {
    this.finished.push({ task, result });
    return result.ok ? "succeeded" : "retry-scheduled";
  }

  async release(task: HeldTask): Promise<ReleaseOutcome> {
    this.released.push(task);
    return "released";
  }

  async renew(tasks: readonly LeasedTask[]): Promise<number> {
    return tasks.length;
  }

  async getTask(): Promise<undefined> {
    return undefined;
  }

  /** listTasks calls, oldest first. */
  readonly listed: { readonly userId: string; readonly state: ListState; readonly options: ListOptions }[] = [];
  /** What the next listTasks calls answer, in turn (an empty last page when none is left). */
  readonly listAnswers: ListPage[] = [];

  async listTasks(userId: string, state: ListState, options: ListOptions): Promise<ListPage> {
    this.listed.push({ userId, state, options });
    return this.listAnswers.shift() ?? { tasks: [], next: undefined };
  }

  cancelTask(): never {
    throw new Error("FakeStore: cancelTask is not faked");
  }

  purgeQueue(): never {
    throw new Error("FakeStore: purgeQueue is not faked");
  }

  /** What the next listQueues calls answer, in turn (none when none is left). */
  readonly queuesAnswers: QueueSummary[][] = [];
  /** How many times listQueues was called. */
  queuesListed = 0;

  async listQueues(): Promise<QueueSummary[]> {
    this.queuesListed++;
    return this.queuesAnswers.shift() ?? [];
  }

  pauseQueue(): never {
    throw new Error("FakeStore: pauseQueue is not faked");
  }

  resumeQueue(): never {
    throw new Error("FakeStore: resumeQueue is not faked");
  }

  /** requeueDeadLetters and purgeDeadLetters calls, oldest first. */
  readonly deadLetterCalls: {
    readonly action: "requeue" | "purge";
    readonly userId: string;
    readonly tasks: DeadLetterSelection;
  }[] = [];

  /** Answers every id asked for as done (none for "all"). */
  async requeueDeadLetters(userId: string, tasks: DeadLetterSelection): Promise<DeadLetterResult> {
    this.deadLetterCalls.push({ action: "requeue", userId, tasks });
    return { done: tasks === "all" ? 0 : tasks.length, notFound: [] };
  }

  async purgeDeadLetters(userId: string, tasks: DeadLetterSelection): Promise<DeadLetterResult> {
    this.deadLetterCalls.push({ action: "purge", userId, tasks });
    return { done: tasks === "all" ? 0 : tasks.length, notFound: [] };
  }

  snapshot(userId: string): Promise<QueueSnapshot> {
    const pending = Object.assign(new Deferred<QueueSnapshot>(), { userId });
    this.snapshots.push(pending);
    return pending.promise;
  }

  snapshotAll(): Promise<QueueSnapshot> {
    return this.snapshot("");
  }

  async dueUserCount(): Promise<number> {
    return 0;
  }

  async droppedDeadLetters(): Promise<number> {
    return 0;
  }

  async onWake(listener: WakeListener): Promise<Unsubscribe> {
    this.wakeListeners.add(listener);
    return async () => {
      this.wakeListeners.delete(listener);
    };
  }

  /** Delivers a wake-up to every wake listener; undefined says wakes may have been missed. */
  wake(wake: Wake | undefined): void {
    for (const listener of [...this.wakeListeners]) listener(wake);
  }

  /** Subscribed cancel listeners. */
  readonly cancelListeners = new Set<CancelListener>();

  async onCancel(listener: CancelListener): Promise<Unsubscribe> {
    this.cancelListeners.add(listener);
    return async () => {
      this.cancelListeners.delete(listener);
    };
  }

  async onProgress(listener: ProgressListener): Promise<Unsubscribe> {
    this.progressSubscribes++;
    const answer = this.progressSubscribeAnswers.shift();
    if (answer) await answer.promise;
    this.progressListeners.add(listener);
    return async () => {
      this.progressListeners.delete(listener);
    };
  }

  /** Delivers a progress event for `userId` to every progress listener. */
  progress(userId: string): void {
    for (const listener of [...this.progressListeners]) listener(userId);
  }

  onAvailability(listener: AvailabilityListener): () => void {
    listener(true);
    return () => {};
  }
}

/** Lets promise callbacks run (no timers fire: the clock is fake). */
export async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
