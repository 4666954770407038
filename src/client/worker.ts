import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createTransport, type TollgateClientOptions } from "./client.js";
import { HandlerPool } from "./handler-pool.js";
import { reconnectDelayMs } from "./reconnect-backoff.js";
import { WorkerSession, type WorkerHandler } from "./worker-session.js";
import { WorkerService, type WorkerWelcome } from "../../gen/ts/tollgate/v1/worker_service_pb.js";

export interface WorkerOptions extends TollgateClientOptions {
  /** The kinds of task this worker runs (at least one, each non-empty). */
  readonly kinds: readonly string[];
  /** Tasks at once, 1 to 1000: the server assigns no more, and no more handlers run here. */
  readonly concurrency: number;
  /** For people: shown in the server's metrics and dashboard. */
  readonly name?: string;
  readonly handler: WorkerHandler;
  /** Aborting it is stop(). */
  readonly signal?: AbortSignal;
  /** How long stop() lets running handlers finish and answer (default 10 s). */
  readonly stopGraceMs?: number;
  /** What happens to the connection, for logs: the stream is welcomed, or lost and about to be reopened. */
  readonly onEvent?: (event: WorkerEvent) => void;
}

export type WorkerEvent =
  | { readonly type: "connected"; readonly welcome: WorkerWelcome }
  | { readonly type: "disconnected"; readonly error: ConnectError; readonly reconnectInMs: number };

export interface WorkerHandle {
  /**
   * Settles when the worker has stopped: resolves after stop() (or the
   * signal), rejects with the ConnectError when the server refuses the
   * worker for good (INVALID_ARGUMENT, PERMISSION_DENIED, UNAUTHENTICATED).
   */
  readonly done: Promise<void>;
  /** Stops gracefully (see runWorker); resolves when stopped, never rejects (errors are done's). */
  stop(): Promise<void>;
}

/** Codes that another attempt would only repeat: a bad hello, or a key that may not run workers. */
const FATAL_CODES: ReadonlySet<Code> = new Set([Code.InvalidArgument, Code.PermissionDenied, Code.Unauthenticated]);
const DEFAULT_STOP_GRACE_MS = 10_000;

/**
 * Runs tasks of the given kinds sent by the server over WorkerService.Work:
 * each through `handler`, at most `concurrency` at once, each answered
 * completed or failed. A lost stream (a server restart, the network) is
 * reopened after a backoff (100 ms doubling to 5 s, jittered) and the worker
 * starts over: the server has handed the lost stream's unanswered tasks back
 * to their queues, so their handlers, still running here, are aborted and
 * their results dropped. A refusal that would only repeat rejects `done`.
 *
 * stop() stops starting tasks, lets running handlers finish for up to
 * `stopGraceMs` and sends their results, then aborts the rest unanswered
 * (the server runs them again) and closes the stream.
 */
export function runWorker(options: WorkerOptions): WorkerHandle {
  checkOptions(options);
  const client = createClient(WorkerService, createTransport(options));
  const pool = new HandlerPool(options.concurrency);
  const stopping = new AbortController();
  const graceMs = options.stopGraceMs ?? DEFAULT_STOP_GRACE_MS;
  let stopDeadlineMs = 0;
  let session: WorkerSession | undefined;
  let draining: Promise<void> | undefined;
  pool.onFreed(() => session?.pump());
  const sessionOptions = {
    ...options,
    onWelcome: (welcome: WorkerWelcome) => options.onEvent?.({ type: "connected", welcome }),
  };

  const onAbort = (): void => void stop();
  const serve = async (): Promise<void> => {
    let failures = 0;
    try {
      while (!stopping.signal.aborted) {
        session = new WorkerSession(client, sessionOptions, pool);
        const end = await session.run();
        session = undefined;
        if (stopping.signal.aborted) break;
        const error = end.error ?? new ConnectError("the server ended the stream", Code.Unavailable);
        if (FATAL_CODES.has(error.code)) throw error;
        // A welcomed session counts as a success: the next failure waits the shortest time again.
        failures = end.welcome !== undefined ? 1 : failures + 1;
        const reconnectInMs = reconnectDelayMs(failures);
        options.onEvent?.({ type: "disconnected", error, reconnectInMs });
        await sleep(reconnectInMs, undefined, { signal: stopping.signal }).catch(() => {});
      }
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
      // Handlers of lost streams still running: the rest of the grace, then aborted.
      await draining;
      await pool.idle(stopDeadlineMs);
      pool.abortAll(new Error("the worker is stopping: the task goes back to its queue"));
    }
  };
  if (options.signal?.aborted) stopping.abort(); // stopped before it started: never connects
  const done = serve();

  const stop = (): Promise<void> => {
    if (!stopping.signal.aborted) {
      stopDeadlineMs = Date.now() + graceMs;
      stopping.abort();
      draining = session?.drain(stopDeadlineMs);
    }
    return done.then(
      () => undefined,
      () => undefined,
    );
  };
  options.signal?.addEventListener("abort", onAbort, { once: true });
  return { done, stop };
}

/** A programming error is thrown here, at once, rather than answered INVALID_ARGUMENT by the server later. */
function checkOptions(options: WorkerOptions): void {
  if (options.kinds.length === 0 || options.kinds.some((kind) => typeof kind !== "string" || kind === "")) {
    throw new TypeError("runWorker: kinds must name at least one kind, each non-empty");
  }
  if (!Number.isInteger(options.concurrency) || options.concurrency < 1 || options.concurrency > 1000) {
    throw new RangeError(`runWorker: concurrency must be a whole number from 1 to 1000, not ${options.concurrency}`);
  }
  if (typeof options.handler !== "function") throw new TypeError("runWorker: handler must be a function");
}
