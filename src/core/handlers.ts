import { mkdir, open, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { pathToFileURL } from "node:url";

/** What a handler is given: one attempt at one task. */
export interface TaskInput {
  readonly taskId: string;
  readonly userId: string;
  readonly kind: string;
  readonly payload: Uint8Array;
  /** 1 for the first attempt. */
  readonly attempt: number;
}

export interface TaskContext {
  /** Aborted when the attempt times out or the server stops. */
  readonly signal: AbortSignal;
}

export type TaskHandler = (task: TaskInput, context: TaskContext) => Promise<void> | void;

export interface HandlerSet {
  /** Names a task's `kind` may take; the empty kind is always allowed. */
  readonly kinds: ReadonlySet<string>;
  handlerFor(kind: string): TaskHandler;
  close(): Promise<void>;
}

/**
 * The built-in handler: appends `<user_id>-task completed at-<epoch ms>` to
 * the task log, as the original design note did (the time is the task's
 * start). Lines that arrive while a write is in flight go out together in the
 * next one: one write per batch, not per task. O_APPEND keeps each write whole
 * when several processes share the file.
 */
function taskLogHandler(path: string): { handler: TaskHandler; close(): Promise<void> } {
  let file: Promise<FileHandle> | undefined;
  let batch: { lines: string[]; done: Promise<void> } | undefined;
  let writing: Promise<void> = Promise.resolve();
  const append = (line: string): Promise<void> => {
    if (batch) {
      batch.lines.push(line);
      return batch.done;
    }
    const lines = [line];
    const done = writing.then(async () => {
      batch = undefined; // lines from here on wait for the next write
      file ??= mkdir(dirname(path), { recursive: true }).then(() => open(path, "a"));
      await (await file).write(lines.join(""));
    });
    batch = { lines, done };
    writing = done.catch(() => {});
    return done;
  };
  return {
    handler: (task) => append(`${task.userId}-task completed at-${Date.now()}\n`),
    close: async () => {
      await writing;
      const handle = file;
      file = undefined;
      if (handle) await (await handle).close();
    },
  };
}

/**
 * A handler module's exports. A TypeScript module (.ts, .mts, .cts, .tsx) is
 * imported through tsx, whose loader is then registered for that module and
 * what it imports only: a process that loads no TypeScript handler runs no
 * TypeScript loader.
 */
async function importModule(modulePath: string): Promise<Record<string, unknown>> {
  const url = pathToFileURL(modulePath).href;
  if (!/\.[cm]?tsx?$/.test(modulePath)) return (await import(url)) as Record<string, unknown>;
  const { tsImport } = await import("tsx/esm/api");
  return (await tsImport(url, import.meta.url)) as Record<string, unknown>;
}

/**
 * Loads TOLLGATE_HANDLER: a module whose exported functions are handlers. The
 * `default` export runs tasks with an empty kind; any other exported function
 * runs tasks whose kind is its export name. Without a module, or without a
 * default export, empty-kind tasks go to the built-in task-log handler.
 */
export async function loadHandlers(modulePath: string | undefined, taskLogPath: string): Promise<HandlerSet> {
  const builtIn = taskLogHandler(taskLogPath);
  const byKind = new Map<string, TaskHandler>();
  if (modulePath !== undefined) {
    const loaded = await importModule(modulePath);
    for (const [name, value] of Object.entries(loaded)) {
      if (typeof value === "function") byKind.set(name, value as TaskHandler);
    }
    if (byKind.size === 0) {
      throw new Error(`${modulePath} exports no functions; a handler module exports async (task, { signal }) => void`);
    }
  }
  const fallback = byKind.get("default") ?? builtIn.handler;
  return {
    kinds: new Set([...byKind.keys()].filter((name) => name !== "default")),
    handlerFor: (kind) => (kind === "" ? fallback : (byKind.get(kind) ?? fallback)),
    close: builtIn.close,
  };
}
