// A TOLLGATE_HANDLER module: each exported function runs the tasks whose
// `kind` is its export name; `default` runs tasks with an empty kind.
//
//   TOLLGATE_HANDLER=./examples/handlers.mjs npm start
//
// A handler gets the task ({ taskId, userId, kind, payload, attempt }) and
// { signal }, which aborts when the attempt times out (TOLLGATE_TASK_TIMEOUT_MS)
// or the server stops. Return to succeed; throw to fail the attempt: it is
// retried with backoff up to TOLLGATE_MAX_ATTEMPTS, then dead-lettered.
import { appendFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";

const output = process.env.EXAMPLE_OUTPUT ?? "example-output.log";

/** kind "": appends "<user> <task id> <payload>" to EXAMPLE_OUTPUT. */
export default async function record(task) {
  const text = Buffer.from(task.payload).toString("utf8");
  await appendFile(output, `${task.userId} ${task.taskId} ${text}\n`);
}

/** kind "pause": waits as many ms as the payload says, unless aborted. */
export async function pause(task, { signal }) {
  await sleep(Number(Buffer.from(task.payload).toString("utf8") || "1000"), undefined, { signal });
}

/** kind "fail": fails its first attempt, then succeeds (see GetTask's attempts). */
export async function fail(task) {
  if (task.attempt === 1) throw new Error("first attempts of kind 'fail' always fail");
}
