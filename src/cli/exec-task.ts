import { spawn, type ChildProcess } from "node:child_process";
import { DoNotRetryError } from "../client/do-not-retry.js";
import type { WorkerHandler, WorkerTask } from "../client/worker-session.js";

/** The exit code with which a task's command says: do not retry (dead-letter the task now). */
const EXIT_DO_NOT_RETRY = 100;
/** After SIGTERM, how long a cancelled command has before SIGKILL. */
const KILL_AFTER_MS = 5_000;
/** Enough of stderr to hold its last line. */
const STDERR_TAIL_CHARS = 4_096;

export interface ExecTasks {
  readonly handler: WorkerHandler;
  /** Resolves once every command started so far has exited (a stopped worker waits for its killed ones). */
  exited(): Promise<void>;
}

/**
 * Each task as a run of `command` under `sh -c`: the payload on its stdin,
 * the task in TOLLGATE_TASK_ID, TOLLGATE_USER_ID, TOLLGATE_KIND and
 * TOLLGATE_ATTEMPT; its stdout and stderr are ours, unprefixed (stderr is
 * also kept for its last line). Exit 0 completes the task, EXIT_DO_NOT_RETRY
 * fails it for good, any other end fails it with "exit N: <last line of
 * stderr>". Each command leads a process group of its own, so that an abort
 * (a cancel, a lost stream, a stop past its grace) reaches everything it
 * started: SIGTERM to the group, SIGKILL KILL_AFTER_MS later. That also keeps
 * a terminal's Ctrl-C, meant for the worker, from reaching the commands: the
 * worker then lets them finish.
 */
export function execTasks(command: string): ExecTasks {
  const running = new Set<Promise<unknown>>();
  return {
    handler: (task, { signal }) => {
      const run = runCommand(command, task, signal);
      const settled = run.catch(() => {});
      running.add(settled);
      void settled.then(() => running.delete(settled));
      return run;
    },
    exited: async () => {
      while (running.size > 0) await Promise.all(running);
    },
  };
}

function runCommand(command: string, task: WorkerTask, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const child = spawn("sh", ["-c", command], {
      detached: true,
      stdio: ["pipe", "inherit", "pipe"],
      env: {
        ...process.env,
        TOLLGATE_TASK_ID: task.taskId,
        TOLLGATE_USER_ID: task.userId,
        TOLLGATE_KIND: task.kind,
        TOLLGATE_ATTEMPT: String(task.attempt),
      },
    });
    let tail = "";
    child.stderr!.on("data", (chunk: Buffer) => {
      process.stderr.write(chunk);
      tail = (tail + chunk.toString()).slice(-STDERR_TAIL_CHARS);
    });
    // A command that does not read its stdin closes it early (EPIPE): not a failure of the task.
    child.stdin!.on("error", () => {});
    child.stdin!.end(task.payload);

    let killTimer: NodeJS.Timeout | undefined;
    const onAbort = () => {
      killGroup(child, "SIGTERM");
      killTimer = setTimeout(() => killGroup(child, "SIGKILL"), KILL_AFTER_MS);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    const settle = () => {
      signal.removeEventListener("abort", onAbort);
      clearTimeout(killTimer);
    };
    child.once("error", (error) => {
      settle();
      reject(error);
    });
    // "close", not "exit": stderr is read to its end, so its last line is known.
    child.once("close", (code, exitSignal) => {
      settle();
      if (signal.aborted) return reject(signal.reason);
      if (code === 0) return resolve();
      const line = lastLine(tail);
      const end = code === null ? `signal ${exitSignal}` : `exit ${code}`;
      const message = line === "" ? end : `${end}: ${line}`;
      reject(code === EXIT_DO_NOT_RETRY ? new DoNotRetryError(message) : new Error(message));
    });
  });
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, signal); // the negative pid: the whole group
  } catch {
    // ESRCH: the group is gone already.
  }
}

function lastLine(text: string): string {
  const lines = text.split("\n").map((line) => line.trim());
  return lines.findLast((line) => line !== "") ?? "";
}
