import type { Clock } from "./clock.js";
import { Drainer, type ClaimObserver } from "./drainer.js";
import type { HandlerSet, TaskHandler, TaskInput } from "./handlers.js";
import type { Logger } from "../logger.js";
import { metrics } from "../metrics.js";
import type { TaskStore } from "./store.js";
import { randomId } from "./task-id.js";
import { AttemptHandedBack, TaskRunner, type TaskRunnerOptions } from "./task-runner.js";
import type { WorkerDirectory } from "./worker-directory.js";

/** What the pool sends one connected worker; the transport (src/grpc/worker-service.ts) carries it. */
export interface WorkerLink {
  assign(task: TaskInput): void;
  cancel(task: { readonly taskId: string; readonly attempt: number }, reason: string): void;
}

/** What a worker says it runs. */
export interface WorkerHello {
  readonly kinds: readonly string[];
  readonly concurrency: number;
  readonly name: string;
}

/** A worker's answer to one assignment. */
export type RemoteOutcome =
  | { readonly ok: true }
  | { readonly ok: false; readonly error: string; readonly doNotRetry: boolean };

/** One connected worker as the pool keeps it, and as ListWorkers and metrics show it. */
export interface WorkerView {
  readonly id: string;
  readonly name: string;
  readonly kinds: readonly string[];
  readonly concurrency: number;
  readonly inFlight: number;
  /** Local clock, ms. */
  readonly connectedAt: number;
}

/** A connected worker's side of the pool: its answers, and its end. */
export interface WorkerConnection {
  readonly id: string;
  /** Records the worker's answer; false when it answers no assignment of its own. */
  answer(taskId: string, attempt: number, outcome: RemoteOutcome): boolean;
  /** The worker is gone: its unanswered tasks go back to their queues. Idempotent. */
  disconnect(reason: string): void;
}

interface Assignment {
  readonly kind: string;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

interface Session {
  readonly id: string;
  readonly hello: WorkerHello;
  readonly link: WorkerLink;
  readonly connectedAt: number;
  /** By "taskId:attempt": assignments sent and not answered. */
  readonly inFlight: Map<string, Assignment>;
  gone: boolean;
}

/**
 * The tasks of one kind that this process's connected workers run: a runner
 * (leases, timeouts, retries, outcomes, exactly as for handlers run here)
 * whose handler sends each task to a worker with room, and a drainer that
 * claims only users parked under the kind (Claimer: it does not route).
 */
interface Lane {
  readonly kind: string;
  readonly runner: TaskRunner;
  readonly drainer: Drainer;
  readonly sessions: Set<Session>;
  /** Dispatches waiting for a worker with room (a worker of several kinds was filled by another). */
  waiting: (() => void)[];
}

export interface RemoteWorkersOptions {
  /** As the local runner's; concurrency is the connected workers' total, per kind. */
  readonly runner: Omit<TaskRunnerOptions, "concurrency">;
  readonly maxSleepMs: number;
  readonly observe?: ClaimObserver;
  /** Where this process's workers are published for every host to see, as `server`. */
  readonly directory?: WorkerDirectory;
  readonly server: string;
}

/** How often a process with workers republishes them (readers drop a list older than STALE_AFTER_MS). */
const PUBLISH_EVERY_MS = 5_000;

const key = (taskId: string, attempt: number): string => `${taskId}:${attempt}`;

/**
 * Workers connected to this process over WorkerService: each kind they run
 * gets a lane that claims from the same store, windows and fairness as the
 * server's own drainer, and dispatches to the workers with room, never more
 * at once to a worker than it asked for. A worker that goes away hands its
 * unanswered tasks back to the head of their queues, where any claimer of
 * their kind takes them.
 */
export class RemoteWorkers {
  private readonly sessions = new Map<string, Session>();
  private readonly lanes = new Map<string, Lane>();
  /** Lanes closing (their last worker left), which close() waits for. */
  private readonly closingLanes = new Set<Promise<void>>();
  private closed = false;
  private cancelPublish: (() => void) | undefined;

  constructor(
    private readonly store: TaskStore,
    private readonly logger: Logger,
    private readonly clock: Clock,
    private readonly options: RemoteWorkersOptions,
  ) {}

  /** Kinds some worker connected here runs. */
  kinds(): ReadonlySet<string> {
    return new Set(this.lanes.keys());
  }

  /** The connected workers. */
  list(): WorkerView[] {
    return [...this.sessions.values()].map((session) => ({
      id: session.id,
      name: session.hello.name,
      kinds: session.hello.kinds,
      concurrency: session.hello.concurrency,
      inFlight: session.inFlight.size,
      connectedAt: session.connectedAt,
    }));
  }

  /**
   * A worker joins: its kinds' lanes start claiming (those it is the first
   * for), with its concurrency added to theirs. Rejects when the store
   * cannot be reached or the pool is closed.
   */
  async connect(hello: WorkerHello, link: WorkerLink): Promise<WorkerConnection> {
    if (this.closed) throw new Error("the server is stopping");
    const session: Session = {
      id: randomId(),
      hello,
      link,
      connectedAt: this.clock.now(),
      inFlight: new Map(),
      gone: false,
    };
    this.sessions.set(session.id, session);
    const started: Promise<void>[] = [];
    for (const kind of new Set(hello.kinds)) {
      let lane = this.lanes.get(kind);
      if (!lane) {
        lane = this.openLane(kind);
        started.push(lane.drainer.start());
      }
      lane.sessions.add(session);
      this.resize(lane);
    }
    try {
      await Promise.all(started);
    } catch (error) {
      this.leave(session, "its lanes could not start");
      throw error;
    }
    this.logger.info(
      { workerId: session.id, name: hello.name, kinds: hello.kinds, concurrency: hello.concurrency },
      "worker connected",
    );
    this.publishSoon();
    return {
      id: session.id,
      answer: (taskId, attempt, outcome) => this.answer(session, taskId, attempt, outcome),
      disconnect: (reason) => this.leave(session, reason),
    };
  }

  private openLane(kind: string): Lane {
    const handler: TaskHandler = (task, { signal }) => this.dispatch(lane, task, signal);
    const handlers: HandlerSet = { kinds: new Set([kind]), handlerFor: () => handler, close: async () => {} };
    const runner = new TaskRunner(this.store, handlers, this.logger, this.clock, {
      ...this.options.runner,
      concurrency: 0,
    });
    const drainer = new Drainer(
      this.store,
      runner,
      this.logger,
      this.clock,
      { maxSleepMs: this.options.maxSleepMs, claimer: { kinds: [kind], routes: false } },
      this.options.observe,
    );
    const lane: Lane = { kind, runner, drainer, sessions: new Set(), waiting: [] };
    this.lanes.set(kind, lane);
    return lane;
  }

  /** The lane's concurrency is its workers' total; metrics follow. */
  private resize(lane: Lane): void {
    let slots = 0;
    for (const session of lane.sessions) slots += session.hello.concurrency;
    lane.runner.setConcurrency(slots);
    this.measure(lane);
  }

  private measure(lane: Lane): void {
    let slots = 0;
    let inFlight = 0;
    for (const session of lane.sessions) {
      slots += session.hello.concurrency;
      for (const assignment of session.inFlight.values()) if (assignment.kind === lane.kind) inFlight++;
    }
    const labels = { kind: lane.kind };
    metrics.remoteWorkers.set(labels, lane.sessions.size);
    metrics.remoteWorkerSlots.set(labels, slots);
    metrics.remoteWorkerTasks.set(labels, inFlight);
  }

  /**
   * The lane's handler: sends the task to a worker of the kind with room
   * (the least busy), and settles when it answers. Aborting the attempt
   * (timeout, CancelTask, stopping) tells the worker; the slot stays taken
   * until it answers or goes. With no worker left it is handed back.
   */
  private async dispatch(lane: Lane, task: TaskInput, signal: AbortSignal): Promise<void> {
    let session = this.roomIn(lane);
    while (!session) {
      if (lane.sessions.size === 0) throw new AttemptHandedBack("no worker of its kind is connected here");
      if (signal.aborted) throw signal.reason;
      await new Promise<void>((resolve) => lane.waiting.push(resolve));
      session = this.roomIn(lane);
    }
    const chosen = session;
    const id = key(task.taskId, task.attempt);
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const reason = signal.reason instanceof Error ? signal.reason.message : String(signal.reason);
        chosen.link.cancel(task, reason);
      };
      const settle = (): void => signal.removeEventListener("abort", onAbort);
      chosen.inFlight.set(id, {
        kind: lane.kind,
        resolve: () => {
          settle();
          resolve();
        },
        reject: (error) => {
          settle();
          reject(error);
        },
      });
      signal.addEventListener("abort", onAbort, { once: true });
      this.measure(lane);
      chosen.link.assign(task);
      if (signal.aborted) onAbort();
    });
  }

  private roomIn(lane: Lane): Session | undefined {
    let best: Session | undefined;
    for (const session of lane.sessions) {
      if (session.gone || session.inFlight.size >= session.hello.concurrency) continue;
      if (!best || session.inFlight.size < best.inFlight.size) best = session;
    }
    return best;
  }

  private answer(session: Session, taskId: string, attempt: number, outcome: RemoteOutcome): boolean {
    const id = key(taskId, attempt);
    const assignment = session.inFlight.get(id);
    if (!assignment) return false;
    session.inFlight.delete(id);
    if (outcome.ok) assignment.resolve();
    else assignment.reject(Object.assign(new Error(outcome.error), { doNotRetry: outcome.doNotRetry }));
    this.roomFreed(session);
    return true;
  }

  /** A worker of these lanes has room again, or left: waiting dispatches look again. */
  private roomFreed(session: Session): void {
    for (const kind of session.hello.kinds) {
      const lane = this.lanes.get(kind);
      if (!lane) continue;
      const waiting = lane.waiting;
      lane.waiting = [];
      for (const wake of waiting) wake();
      this.measure(lane);
    }
  }

  private leave(session: Session, reason: string): void {
    if (session.gone) return;
    session.gone = true;
    this.sessions.delete(session.id);
    const unanswered = [...session.inFlight.values()];
    session.inFlight.clear();
    for (const assignment of unanswered) assignment.reject(new AttemptHandedBack(`its worker went away: ${reason}`));
    for (const kind of new Set(session.hello.kinds)) {
      const lane = this.lanes.get(kind);
      if (!lane) continue;
      lane.sessions.delete(session);
      this.resize(lane);
      if (lane.sessions.size === 0) this.closeLane(lane, 0);
    }
    this.roomFreed(session);
    this.logger.info(
      { workerId: session.id, name: session.hello.name, handedBack: unanswered.length, reason },
      "worker disconnected",
    );
    this.publishSoon();
  }

  /** Publishes the workers now, and again every PUBLISH_EVERY_MS while there are any. */
  private publishSoon(): void {
    const { directory } = this.options;
    if (!directory) return;
    this.cancelPublish?.();
    this.cancelPublish = undefined;
    directory.publish(this.options.server, this.closed ? [] : this.list()).catch((error: unknown) => {
      this.logger.warn({ error: (error as Error).message }, "could not publish the connected workers");
    });
    if (this.sessions.size > 0 && !this.closed) {
      this.cancelPublish = this.clock.setTimer(() => this.publishSoon(), PUBLISH_EVERY_MS);
    }
  }

  /** Stops the lane claiming; its running tasks get graceMs, then are handed back. */
  private closeLane(lane: Lane, graceMs: number): void {
    if (this.lanes.get(lane.kind) === lane) this.lanes.delete(lane.kind);
    metrics.remoteWorkers.remove({ kind: lane.kind });
    metrics.remoteWorkerSlots.remove({ kind: lane.kind });
    metrics.remoteWorkerTasks.remove({ kind: lane.kind });
    const closing = (async () => {
      await lane.drainer.close();
      await lane.runner.close(graceMs);
    })().catch((error: unknown) => {
      this.logger.warn({ error: (error as Error).message, kind: lane.kind }, "could not close a worker lane");
    });
    const tracked = closing.finally(() => this.closingLanes.delete(tracked));
    this.closingLanes.add(tracked);
  }

  /**
   * Stops claiming for workers; running tasks get graceMs to be answered,
   * then their workers are told to stop and the tasks are handed back.
   * Workers stay connected (the transport ends their streams after). Idempotent.
   */
  async close(graceMs: number): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      if (this.sessions.size > 0) this.publishSoon();
      for (const lane of [...this.lanes.values()]) this.closeLane(lane, graceMs);
    }
    await Promise.all([...this.closingLanes]);
  }
}
