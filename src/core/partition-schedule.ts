// The drainer's plan over the store's partitions: when each one needs a
// claim, and how this process's free slots are shared among them. Pure
// bookkeeping on the local clock (the drainer converts the store's moments),
// so that the fairness and timing rules can be tested without I/O.

/** A claim to send now: `maxClaims` 0 recovers leases and retries only. */
export interface PlannedClaim {
  readonly partition: number;
  readonly maxClaims: number;
}

/** A claim's reply, its moments on the local clock. */
export interface ClaimOutcome {
  readonly claimed: number;
  /** The store saw users due at the time of the claim that it did not take. */
  readonly dueLeft: boolean;
  readonly nextDue: number | undefined;
  readonly nextRetry: number | undefined;
  readonly nextLeaseExpiry: number | undefined;
}

/**
 * A partition whose reply says users are due though it took none of the
 * slots it was given is looked at again this much later, not at once: what
 * is due there cannot be claimed yet, and asking again at once would spin.
 * One that took some is claimed again at once, as it is making progress.
 */
const NOTHING_CLAIMABLE_RETRY_MS = 10;

/** Backoff after a failed claim: it doubles from 500 ms, up to this. */
const MAX_BACKOFF_MS = 5_000;

interface PartitionState {
  /** When it must be claimed, slots or not: leases, retries, the longest sleep. */
  plannedAt: number;
  /**
   * Its earliest known due user (at or before now: waiting for a slot),
   * which also ranks it when slots are scarce.
   */
  dueAt: number | undefined;
  /** No claim before this: a backoff after failures, or a pause against spinning. */
  notBefore: number;
  /** Slots given to its claim in flight; undefined when none is. */
  granted: number | undefined;
  /** Earliest wake while its claim was in flight, which that claim's reply may predate. */
  wokenAt: number;
  failures: number;
  /** Its latest reply left due users unclaimed. */
  dueLeft: boolean;
}

export class PartitionSchedule {
  private readonly states: PartitionState[];
  /** Slots given to claims in flight: free in the runner still, but spoken for. */
  private committed = 0;
  /** Partitions whose latest claim failed. */
  private failing = 0;
  /** Where ties in due moments start, moved on each time slots are given. */
  private rotor = 0;

  constructor(
    readonly partitions: number,
    private readonly maxSleepMs: number,
  ) {
    if (!Number.isInteger(partitions) || partitions < 1) throw new Error(`invalid partition count: ${partitions}`);
    this.states = Array.from({ length: partitions }, () => ({
      plannedAt: Infinity,
      dueAt: undefined,
      notBefore: -Infinity,
      granted: undefined,
      wokenAt: Infinity,
      failures: 0,
      dueLeft: false,
    }));
  }

  /**
   * Some partition's latest reply left due users unclaimed and no claim for
   * them is in flight: they wait for a slot, or for something else to give
   * (a global window, max_running), and new Submits queue behind them (see
   * TaskRunner.dueTasksWaiting). Users left while a slot was free are claimed
   * again at once; Submits that take other free slots meanwhile do not delay
   * them, and queueing those Submits too would keep the partition's reply
   * leaving due users, a state that under steady load never ended.
   */
  get dueTasksWaiting(): boolean {
    return this.states.some((state) => state.dueLeft && state.granted === undefined);
  }

  /**
   * Every partition is to be claimed now, as if users were due in each: at
   * start, and when wakes may have been missed. One in flight is claimed
   * again once it answers, as its reply may predate what was missed.
   */
  lookEverywhere(now: number): void {
    for (const state of this.states) {
      if (state.granted !== undefined) {
        state.wokenAt = Math.min(state.wokenAt, now);
      } else {
        state.plannedAt = Math.min(state.plannedAt, now);
        state.dueAt = Math.min(state.dueAt ?? Infinity, now);
      }
    }
  }

  /** A user of `partition` is due at `at`. */
  wake(partition: number, at: number): void {
    const state = this.states[partition];
    if (!state) return; // not a partition of this store: nothing to claim
    if (state.granted !== undefined) state.wokenAt = Math.min(state.wokenAt, at);
    else state.dueAt = Math.min(state.dueAt ?? Infinity, at);
  }

  /**
   * The claims to send now, taken to be in flight until settled() or
   * failed(). The slots free in the runner that no claim in flight holds go
   * to the partitions with due users, the longest-waiting first: a user in a
   * quiet partition does not wait behind a busy partition's backlog, and the
   * slots are never promised twice. A partition that gets none waits for a
   * slot, unless its leases or retries need a claim anyway.
   */
  takeClaims(now: number, freeSlots: number): PlannedClaim[] {
    const idle: number[] = []; // neither in flight nor backing off
    for (let partition = 0; partition < this.partitions; partition++) {
      const state = this.states[partition]!;
      if (state.granted === undefined && state.notBefore <= now) idle.push(partition);
    }
    const due = idle
      .filter((partition) => (this.states[partition]!.dueAt ?? Infinity) <= now)
      .sort((a, b) => this.states[a]!.dueAt! - this.states[b]!.dueAt! || this.turn(a) - this.turn(b));
    const grants = share(Math.max(0, freeSlots - this.committed), due.length);
    const claims: PlannedClaim[] = [];
    due.forEach((partition, i) => {
      if (grants[i]! > 0) claims.push({ partition, maxClaims: grants[i]! });
    });
    if (claims.length > 0) this.rotor = (claims[0]!.partition + 1) % this.partitions;
    for (const partition of idle) {
      if (this.states[partition]!.plannedAt <= now && !claims.some((claim) => claim.partition === partition)) {
        claims.push({ partition, maxClaims: 0 });
      }
    }
    for (const claim of claims) {
      const state = this.states[claim.partition]!;
      state.granted = claim.maxClaims;
      state.wokenAt = Infinity; // wakes from here on may be newer than what this claim reads
      this.committed += claim.maxClaims;
    }
    return claims;
  }

  /** Records a claim's reply and plans the partition's next one. */
  settled(partition: number, outcome: ClaimOutcome, now: number): void {
    const state = this.states[partition]!;
    const granted = this.endClaim(state);
    if (state.failures > 0) this.failing--;
    state.failures = 0;
    state.plannedAt = Math.min(
      now + this.maxSleepMs,
      outcome.nextRetry ?? Infinity,
      outcome.nextLeaseExpiry ?? Infinity,
    );
    state.dueLeft = outcome.dueLeft;
    // Judged by the store's clock: the local estimate of a moment so near
    // now may land on either side of it.
    state.dueAt = outcome.dueLeft ? Math.min(outcome.nextDue ?? now, now) : outcome.nextDue;
    state.notBefore = -Infinity;
    if (outcome.dueLeft && granted > 0 && outcome.claimed === 0 && state.wokenAt === Infinity) {
      state.notBefore = now + NOTHING_CLAIMABLE_RETRY_MS;
    }
    this.keepWake(state);
  }

  /**
   * Backs the partition off after a failed claim; the others go on as
   * planned. True when no other partition is failing, so a run of failures
   * is reported once.
   */
  failed(partition: number, now: number): boolean {
    const state = this.states[partition]!;
    this.endClaim(state);
    state.failures++;
    if (state.failures === 1) this.failing++;
    state.notBefore = now + Math.min(MAX_BACKOFF_MS, 250 * 2 ** Math.min(state.failures, 5));
    state.plannedAt = state.notBefore;
    this.keepWake(state);
    return state.failures === 1 && this.failing === 1;
  }

  /** Some partition has due users and only a free slot is missing to claim them. */
  waitingForSlot(now: number): boolean {
    return this.states.some(
      (state) => state.granted === undefined && state.notBefore <= now && (state.dueAt ?? Infinity) <= now,
    );
  }

  /**
   * When the next claim is due, over every partition not in flight (one in
   * flight is planned again when it answers); Infinity for none. Due users
   * waiting for a slot are not on it: a freed slot is.
   */
  nextMoment(now: number): number {
    let next = Infinity;
    for (const state of this.states) {
      if (state.granted !== undefined) continue;
      let at = state.plannedAt;
      const dueAt = state.dueAt ?? Infinity;
      if (dueAt > now || state.notBefore > now) at = Math.min(at, dueAt);
      next = Math.min(next, Math.max(at, state.notBefore));
    }
    return next;
  }

  /** Ends the partition's claim in flight; returns the slots it held. */
  private endClaim(state: PartitionState): number {
    const granted = state.granted ?? 0;
    this.committed -= granted;
    state.granted = undefined;
    return granted;
  }

  /** A wake during the claim may be about something its reply could not see yet. */
  private keepWake(state: PartitionState): void {
    if (state.wokenAt !== Infinity) state.dueAt = Math.min(state.dueAt ?? Infinity, state.wokenAt);
    state.wokenAt = Infinity;
  }

  /** Rank among partitions due at the same moment, starting at the rotor. */
  private turn(partition: number): number {
    return (partition - this.rotor + this.partitions) % this.partitions;
  }
}

/**
 * Splits `slots` over `takers` ranked oldest first: as evenly as they go,
 * the remainder to the first ones; with fewer slots than takers, one each to
 * the first.
 */
export function share(slots: number, takers: number): number[] {
  if (takers === 0) return [];
  const each = Math.floor(slots / takers);
  const extra = slots % takers;
  return Array.from({ length: takers }, (_, i) => each + (i < extra ? 1 : 0));
}
