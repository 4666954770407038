import type { WorkerView } from "./remote-workers.js";

/** A connected worker as every host sees it: with the server process it is connected to. */
export interface ListedWorker extends WorkerView {
  /** "<host>:<pid>". */
  readonly server: string;
}

/**
 * The workers connected to every host (ListWorkers, the dashboard, and the
 * kinds Submit accepts with TOLLGATE_REQUIRE_KNOWN_KINDS). Each server
 * process publishes its own every few seconds; a process that stopped
 * publishing drops out.
 */
export interface WorkerDirectory {
  /** Replaces what `server` published before; an empty list removes it. */
  publish(server: string, workers: readonly WorkerView[]): Promise<void>;
  list(): Promise<ListedWorker[]>;
}
