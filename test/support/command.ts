import { spawn, type ChildProcess } from "node:child_process";

export interface Finished {
  /** The exit code, or null when a signal ended it. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A command started and left running: its process, what it printed so far, and how it ended once it has. */
export interface StartedCommand {
  readonly child: ChildProcess;
  readonly exited: Promise<Finished>;
  stdout(): string;
  stderr(): string;
}

/** Starts a command, collecting what it prints; a non-zero exit is an answer, not an error. */
export function startCommand(
  command: string,
  args: readonly string[],
  options: { readonly cwd?: string; readonly env?: NodeJS.ProcessEnv; readonly timeoutMs?: number } = {},
): StartedCommand {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ["ignore", "pipe", "pipe"],
    ...(options.timeoutMs === undefined ? {} : { timeout: options.timeoutMs, killSignal: "SIGKILL" as const }),
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<Finished>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, exited, stdout: () => stdout, stderr: () => stderr };
}

/**
 * Runs a command to its end and collects what it printed; a non-zero exit is
 * an answer, not an error. It is killed (SIGKILL) after `timeoutMs`.
 */
export function runCommand(
  command: string,
  args: readonly string[],
  options: { readonly cwd?: string; readonly env?: NodeJS.ProcessEnv; readonly timeoutMs?: number } = {},
): Promise<Finished> {
  return startCommand(command, args, { ...options, timeoutMs: options.timeoutMs ?? 30_000 }).exited;
}

/** "exit 1" or "signal SIGKILL", then everything it printed: for assertion messages. */
export function describeRun(run: Finished): string {
  return `${run.code === null ? `signal ${run.signal}` : `exit ${run.code}`}\n--- stdout\n${run.stdout}--- stderr\n${run.stderr}`;
}
