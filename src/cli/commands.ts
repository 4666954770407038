import { parseArgs, type ParseArgsConfig } from "node:util";
import { toJson } from "@bufbuild/protobuf";
import { timestampDate, timestampFromMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  createHealthClient,
  createPolicyClient,
  createTollgateClient,
  retryAfterMs,
  submitMany,
  type TollgateClientOptions,
} from "../client/client.js";
import { runWorker } from "../client/worker.js";
import type { WorkerHandler } from "../client/worker-session.js";
import { execTasks } from "./exec-task.js";
import { progressOf, renderProgress } from "./progress-bar.js";
import { HealthCheckResponse_ServingStatus } from "../../gen/ts/grpc/health/v1/health_pb.js";
import {
  GetUserPolicyResponseSchema,
  PlanSchema,
  PolicySource,
  SetUserPolicyResponseSchema,
  type Plan,
  type Policy,
} from "../../gen/ts/tollgate/v1/policy_service_pb.js";
import {
  CancelTaskResponseSchema,
  GetTaskResponseSchema,
  ListState,
  OverLimit,
  SubmitResponseSchema,
  TaskSchema,
  TaskState,
  WatchQueueResponseSchema,
  type QueueSummary,
  type SubmitResponse,
  type Task,
  type WatchQueueResponse,
} from "../../gen/ts/tollgate/v1/task_service_pb.js";

export class UsageError extends Error {
  override readonly name = "UsageError";
}

const CONNECTION_OPTIONS = {
  addr: { type: "string" },
  "api-key": { type: "string" },
  tls: { type: "boolean" },
  "tls-ca": { type: "string" },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies ParseArgsConfig["options"];

const CONNECTION_HELP = `Connection flags (every command):
  --addr HOST:PORT     server address (env TOLLGATE_ADDR; default localhost:50051)
  --api-key KEY        sent as "authorization: Bearer KEY" (env TOLLGATE_API_KEY)
  --tls                use TLS; --tls-ca FILE to trust a private CA,
  --tls-cert FILE --tls-key FILE for mutual TLS
  --json               print one JSON object per answer or message, for scripts`;

type Values = Record<string, string | boolean | string[] | undefined>;

function parse<T extends NonNullable<ParseArgsConfig["options"]>>(
  args: readonly string[],
  options: T,
  positionals = false,
) {
  try {
    return parseArgs({
      args: [...args],
      options: { ...CONNECTION_OPTIONS, ...options },
      allowPositionals: positionals,
      strict: true,
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

function connection(values: Values): TollgateClientOptions {
  const addr = (values.addr as string | undefined) ?? process.env.TOLLGATE_ADDR ?? "localhost:50051";
  const secure = values.tls === true || values["tls-ca"] !== undefined || values["tls-cert"] !== undefined;
  const baseUrl = /^https?:\/\//.test(addr) ? addr : `${secure ? "https" : "http"}://${addr}`;
  const apiKey = (values["api-key"] as string | undefined) ?? process.env.TOLLGATE_API_KEY;
  return {
    baseUrl,
    ...(apiKey ? { apiKey } : {}),
    ...(secure
      ? {
          tls: {
            ca: values["tls-ca"] as string | undefined,
            cert: values["tls-cert"] as string | undefined,
            key: values["tls-key"] as string | undefined,
          },
        }
      : {}),
  };
}

function requireUser(values: Values): string {
  const user = values.user;
  if (typeof user !== "string" || user === "") throw new UsageError("--user is required");
  return user;
}

/** One readable line for a failed call: the gRPC code, the message, and when to retry. */
export function describeCallError(error: unknown): string {
  if (error instanceof ConnectError) {
    const retry = retryAfterMs(error);
    const code = Code[error.code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
    return `${code}: ${error.rawMessage}${retry !== undefined ? ` (retry after ${retry} ms)` : ""}`;
  }
  return (error as Error).message;
}

const SUBMIT_HELP = `Usage: tollgate submit --user ID [flags]

Submits tasks; prints each answer (task id, STARTED/QUEUED/DUPLICATE, queue
position, estimated start).
  --user ID              the user the tasks run for (required)
  --count N              submit N tasks (default 1)
  --payload TEXT         the task payload (UTF-8)
  --kind NAME            the handler to run
  --idempotency-key KEY  a repeated key answers DUPLICATE (only with --count 1)
  --reject               refuse instead of queueing when over the limit
  --priority N           0 (default) to 9: higher starts first among this
                         user's queued tasks (never beyond its limits)
  --delay DURATION       start no earlier than this from now (500ms, 3s, 2m, 1h)
  --at TIME              start no earlier than this ISO time (2026-12-03T10:00:00Z)
  --start-by WHEN        not started by then, the task ends EXPIRED instead of
                         running late: an ISO time or a duration from now
  --cost N               units of every window of the user's policy each
                         attempt uses (default 1)
  --watch                then watch the queue drain (see tollgate watch)

${CONNECTION_HELP}`;

export async function submitCommand(args: readonly string[]): Promise<number> {
  const { values } = parse(args, {
    user: { type: "string" },
    count: { type: "string" },
    payload: { type: "string" },
    kind: { type: "string" },
    "idempotency-key": { type: "string" },
    reject: { type: "boolean" },
    priority: { type: "string" },
    delay: { type: "string" },
    at: { type: "string" },
    "start-by": { type: "string" },
    cost: { type: "string" },
    watch: { type: "boolean" },
  });
  if (values.help) return help(SUBMIT_HELP);
  const userId = requireUser(values);
  const count = Number(values.count ?? "1");
  if (!Number.isSafeInteger(count) || count < 1 || count > 1_000_000)
    throw new UsageError("--count must be a whole number from 1");
  if (values["idempotency-key"] !== undefined && count > 1) throw new UsageError("--idempotency-key needs --count 1");
  if (values.delay !== undefined && values.at !== undefined) throw new UsageError("--delay and --at: give one");
  // The range is the server's to check (INVALID_ARGUMENT names it).
  const priority = Number(values.priority ?? "0");
  if (!Number.isSafeInteger(priority) || priority < 0) throw new UsageError("--priority must be a whole number");
  const cost = Number(values.cost ?? "1");
  if (!Number.isSafeInteger(cost) || cost < 1 || cost > 4_294_967_295)
    throw new UsageError("--cost must be a whole number from 1");
  const now = Date.now();
  const notBefore =
    values.delay !== undefined
      ? now + parseDuration("--delay", values.delay)
      : values.at !== undefined
        ? parseTime("--at", values.at)
        : undefined;
  const startByText = values["start-by"];
  const startBy =
    startByText === undefined
      ? undefined
      : /^\d/.test(startByText) && !startByText.includes("-")
        ? now + parseDuration("--start-by", startByText)
        : parseTime("--start-by", startByText);
  const client = createTollgateClient(connection(values));
  const request = {
    userId,
    payload: new TextEncoder().encode(values.payload ?? ""),
    kind: values.kind ?? "",
    idempotencyKey: values["idempotency-key"] ?? "",
    overLimit: values.reject ? OverLimit.REJECT : OverLimit.QUEUE,
    notBefore: notBefore === undefined ? undefined : timestampFromMs(notBefore),
    startBy: startBy === undefined ? undefined : timestampFromMs(startBy),
    priority,
    cost,
  };
  const answers = await submitMany(
    client,
    Array.from({ length: count }, () => request),
    8,
  );
  if (!values.watch || values.json) {
    for (const answer of answers) {
      console.log(values.json ? JSON.stringify(toJson(SubmitResponseSchema, answer)) : describeSubmit(answer));
    }
  } else {
    const started = answers.filter((a) => a.disposition === 1).length;
    console.log(`submitted ${count} for ${userId}: ${started} started, ${count - started} queued`);
  }
  if (!values.watch) return 0;
  return watchUntilDrained(client, userId, values.json === true, false, count);
}

const DURATION_UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** A duration such as 500ms, 3s, 2m, 1h (or 1.5s), in ms. */
function parseDuration(flag: string, text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim());
  if (!match) throw new UsageError(`${flag} must be a duration such as 500ms, 3s, 2m or 1h, not "${text}"`);
  return Math.round(Number(match[1]) * DURATION_UNITS[match[2]!]!);
}

/** An ISO 8601 time with its zone (2026-12-03T10:00:00Z), in ms. */
function parseTime(flag: string, text: string): number {
  const ms = /^\d{4}-\d{2}-\d{2}T.*(Z|[+-]\d{2}:?\d{2})$/i.test(text) ? Date.parse(text) : Number.NaN;
  if (Number.isNaN(ms))
    throw new UsageError(`${flag} must be an ISO time with its zone, such as 2026-12-03T10:00:00Z, not "${text}"`);
  return ms;
}

function describeSubmit(answer: SubmitResponse): string {
  const json = toJson(SubmitResponseSchema, answer) as Record<string, unknown>;
  const disposition = String(json.disposition ?? "").replace("DISPOSITION_", "");
  const position = json.queuePosition ? ` position ${String(json.queuePosition)}` : "";
  const start = json.estimatedStart ? ` starts ${String(json.estimatedStart)}` : "";
  return `${String(json.taskId)} ${disposition}${position}${start}`;
}

const WATCH_HELP = `Usage: tollgate watch --user ID [flags]

Draws a live progress bar of the user's queue (done of total, queued,
running, failed, ETA) and exits 0 when it drains. Without --user, watches
every queue.
  --user ID    the queue to watch
  --follow     keep watching after the queue drains

${CONNECTION_HELP}`;

export async function watchCommand(args: readonly string[]): Promise<number> {
  const { values } = parse(args, { user: { type: "string" }, follow: { type: "boolean" } });
  if (values.help) return help(WATCH_HELP);
  const client = createTollgateClient(connection(values));
  return watchUntilDrained(client, values.user ?? "", values.json === true, values.follow === true, undefined);
}

async function watchUntilDrained(
  client: ReturnType<typeof createTollgateClient>,
  userId: string,
  json: boolean,
  follow: boolean,
  known: number | undefined,
): Promise<number> {
  const tty = process.stdout.isTTY === true && !json;
  let first: WatchQueueResponse | undefined;
  let line = "";
  for await (const message of client.watchQueue({ userId, follow })) {
    first ??= message;
    if (json) {
      console.log(JSON.stringify(toJson(WatchQueueResponseSchema, message)));
      continue;
    }
    const next = renderProgress(userId, progressOf(message, first, known));
    if (next === line) continue;
    line = next;
    process.stdout.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
  }
  if (tty) process.stdout.write("\n");
  return 0;
}

const TASK_HELP = `Usage: tollgate task TASK_ID [flags]

Prints a task's state, attempts and timestamps.

${CONNECTION_HELP}`;

export async function taskCommand(args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(args, {}, true);
  if (values.help) return help(TASK_HELP);
  if (positionals.length !== 1) throw new UsageError("give exactly one task id");
  const client = createTollgateClient(connection(values));
  const answer = await client.getTask({ taskId: positionals[0]! });
  const json = toJson(GetTaskResponseSchema, answer) as { task?: Record<string, unknown> };
  if (values.json) {
    console.log(JSON.stringify(json));
  } else {
    for (const [key, value] of Object.entries(json.task ?? {})) console.log(`${key}: ${String(value)}`);
  }
  return 0;
}

const TASKS_HELP = `Usage: tollgate tasks --user ID [flags]

Lists a user's tasks (ListTasks), one per line: id, state, queue position
(queued) or attempts, submitted at, and the last error (dead).
  --user ID           the user whose tasks to list (required)
  --state STATE       queued (the default, head first), running (earliest
                      started first) or dead (newest first)
  --page-size N       tasks per call (default 50, at most 500)
  --all               every page, not only the first; without it a last line
                      "next page: TOKEN" says more follow
  --page-token TOKEN  continue a listing where that line left off

${CONNECTION_HELP}`;

const LIST_STATES: Readonly<Record<string, ListState>> = {
  queued: ListState.QUEUED,
  running: ListState.RUNNING,
  dead: ListState.DEAD,
};

export async function tasksCommand(args: readonly string[]): Promise<number> {
  const { values } = parse(args, {
    user: { type: "string" },
    state: { type: "string" },
    "page-size": { type: "string" },
    "page-token": { type: "string" },
    all: { type: "boolean" },
  });
  if (values.help) return help(TASKS_HELP);
  const userId = requireUser(values);
  const stateName = values.state ?? "queued";
  const state = Object.hasOwn(LIST_STATES, stateName) ? LIST_STATES[stateName] : undefined;
  if (state === undefined) throw new UsageError("--state must be queued, running or dead");
  const pageSize = Number(values["page-size"] ?? "50");
  if (!Number.isSafeInteger(pageSize) || pageSize < 1)
    throw new UsageError("--page-size must be a whole number from 1");
  const client = createTollgateClient(connection(values));
  let pageToken = values["page-token"] ?? "";
  for (;;) {
    const page = await client.listTasks({ userId, state, pageSize, pageToken });
    for (const task of page.tasks) {
      console.log(values.json ? JSON.stringify(toJson(TaskSchema, task)) : describeTask(task));
    }
    pageToken = page.nextPageToken;
    if (pageToken === "") return 0;
    if (!values.all) {
      if (values.json) console.log(JSON.stringify({ nextPageToken: pageToken }));
      else console.log(`next page: ${pageToken}`);
      return 0;
    }
  }
}

function describeTask(task: Task): string {
  const state = TaskState[task.state];
  const place = task.queuePosition > 0 ? `position ${task.queuePosition}` : `attempts ${task.attempts}`;
  const submitted = task.submittedAt ? timestampDate(task.submittedAt).toISOString() : "-";
  const error = task.state === TaskState.DEAD && task.lastError !== "" ? ` error: ${task.lastError}` : "";
  return `${task.taskId} ${state} ${place} submitted ${submitted}${error}`;
}

const QUEUES_HELP = `Usage: tollgate queues [flags]

Lists every user with tasks queued, running, waiting to retry or dead (and
every paused queue) (ListQueues; admin keys only), the largest backlog
(queued + retrying) first: a table of user, queued, running, retrying, dead
and paused, or one JSON object per user with --json. Each call reads every
partition: an operator's look, not something to poll.
  --page-size N       users per call (default 50, at most 500)
  --all               every page, not only the first; without it a last line
                      "next page: TOKEN" says more follow
  --page-token TOKEN  continue a listing where that line left off

${CONNECTION_HELP}`;

export async function queuesCommand(args: readonly string[]): Promise<number> {
  const { values } = parse(args, {
    "page-size": { type: "string" },
    "page-token": { type: "string" },
    all: { type: "boolean" },
  });
  if (values.help) return help(QUEUES_HELP);
  const pageSize = Number(values["page-size"] ?? "50");
  if (!Number.isSafeInteger(pageSize) || pageSize < 1)
    throw new UsageError("--page-size must be a whole number from 1");
  const client = createTollgateClient(connection(values));
  let pageToken = values["page-token"] ?? "";
  const queues: QueueSummary[] = [];
  for (;;) {
    const page = await client.listQueues({ pageSize, pageToken });
    queues.push(...page.queues);
    pageToken = page.nextPageToken;
    if (pageToken === "" || !values.all) break;
  }
  if (values.json) {
    for (const queue of queues) console.log(JSON.stringify(queueJson(queue)));
  } else {
    for (const line of queuesTable(queues)) console.log(line);
  }
  if (pageToken !== "") {
    console.log(values.json ? JSON.stringify({ nextPageToken: pageToken }) : `next page: ${pageToken}`);
  }
  return 0;
}

function queueJson(queue: QueueSummary) {
  return {
    userId: queue.userId,
    queued: Number(queue.queued),
    running: Number(queue.running),
    waitingToRetry: Number(queue.waitingToRetry),
    dead: Number(queue.dead),
    paused: queue.paused,
  };
}

/** A header and one row per queue, columns aligned (user left, counts right). */
function queuesTable(queues: readonly QueueSummary[]): string[] {
  const rows = [
    ["USER", "QUEUED", "RUNNING", "RETRYING", "DEAD", "PAUSED"],
    ...queues.map((queue) => [
      queue.userId,
      String(queue.queued),
      String(queue.running),
      String(queue.waitingToRetry),
      String(queue.dead),
      queue.paused ? "yes" : "no",
    ]),
  ];
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows.map((row) =>
    row
      .map((cell, column) =>
        column === 0 || column === row.length - 1 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!),
      )
      .join("  ")
      .trimEnd(),
  );
}

const CANCEL_HELP = `Usage: tollgate cancel TASK_ID [flags]

Cancels a task (CancelTask) that has not started or waits to retry: it leaves
its user's queue and ends CANCELLED. A running task's handler is aborted and
the task ends CANCELLED, not retried. Prints the task as
it is after the call; cancelling a cancelled task again is not an error. A
finished task is refused (FAILED_PRECONDITION).

${CONNECTION_HELP}`;

export async function cancelCommand(args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(args, {}, true);
  if (values.help) return help(CANCEL_HELP);
  if (positionals.length !== 1) throw new UsageError("give exactly one task id");
  const client = createTollgateClient(connection(values));
  const answer = await client.cancelTask({ taskId: positionals[0]! });
  const json = toJson(CancelTaskResponseSchema, answer) as { task?: Record<string, unknown> };
  if (values.json) {
    console.log(JSON.stringify(json));
  } else {
    for (const [key, value] of Object.entries(json.task ?? {})) console.log(`${key}: ${String(value)}`);
  }
  return 0;
}

const DEAD_HELP = `Usage: tollgate dead requeue|purge --user ID (--task ID ... | --all) [flags]
       tollgate dead --user ID (--requeue | --purge) [--task ID ...] [flags]

Acts on a user's dead-lettered tasks (list them with tollgate tasks --state
dead):
  requeue   put them back at the tail of the queue with fresh attempts
            (RequeueDeadLetters); they start as the rate policy allows
  purge     delete them and their records (PurgeDeadLetters)
Give exactly one action, as a word or as a flag. With the word, --task or
--all is required; with the flag, no --task means every dead letter.
Prints how many were requeued or purged, and the ids not on the list.
  --user ID    the user whose dead letters to act on (required)
  --requeue    the requeue action, as a flag
  --purge      the purge action, as a flag
  --task ID    a dead-lettered task id; repeat for several (at most 1000)
  --all        every dead letter of the user instead

${CONNECTION_HELP}`;

export async function deadCommand(args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      user: { type: "string" },
      task: { type: "string", multiple: true },
      all: { type: "boolean" },
      requeue: { type: "boolean" },
      purge: { type: "boolean" },
    },
    true,
  );
  if (values.help) return help(DEAD_HELP);
  // The action as a word (dead requeue …) or as a flag (dead --requeue …): exactly one.
  const flagged = (["requeue", "purge"] as const).filter((name) => values[name]);
  const actions = [...positionals, ...flagged];
  const [action] = actions;
  if (actions.length !== 1 || (action !== "requeue" && action !== "purge"))
    throw new UsageError(
      actions.length > 1
        ? "give one action, not several: requeue or purge (or --requeue or --purge)"
        : "give one action: requeue or purge (or --requeue or --purge)",
    );
  const userId = requireUser(values);
  const taskIds = values.task ?? [];
  // The flag form without --task acts on every dead letter; the word form asks for --all.
  if (taskIds.length === 0 && !values.all && flagged.length === 0)
    throw new UsageError("give --task ID (repeatable) or --all");
  if (taskIds.length > 0 && values.all) throw new UsageError("give --task or --all, not both");
  const client = createTollgateClient(connection(values));
  const answer =
    action === "requeue"
      ? await client.requeueDeadLetters({ userId, taskIds })
      : await client.purgeDeadLetters({ userId, taskIds });
  const done = "requeued" in answer ? answer.requeued : answer.purged;
  if (values.json) {
    console.log(JSON.stringify({ [action === "requeue" ? "requeued" : "purged"]: done, notFound: answer.notFound }));
  } else {
    console.log(`${action === "requeue" ? "requeued" : "purged"} ${done}`);
    if (answer.notFound.length > 0) console.log(`not found: ${answer.notFound.join(" ")}`);
  }
  return 0;
}

const PURGE_HELP = `Usage: tollgate purge --user ID [flags]

Cancels every task of a user that has not started or waits to retry
(PurgeQueue) and prints how many; running tasks run on.
  --user ID   the user whose queue to purge (required)

${CONNECTION_HELP}`;

export async function purgeCommand(args: readonly string[]): Promise<number> {
  const { values } = parse(args, { user: { type: "string" } });
  if (values.help) return help(PURGE_HELP);
  const userId = requireUser(values);
  const client = createTollgateClient(connection(values));
  const { cancelled } = await client.purgeQueue({ userId });
  console.log(values.json ? JSON.stringify({ userId, cancelled }) : `cancelled ${cancelled} task(s) of ${userId}`);
  return 0;
}

const PAUSE_HELP = `Usage: tollgate pause --user ID [flags]

Pauses a user's queue (PauseQueue): none of its tasks starts until
"tollgate resume"; Submit still queues. Running tasks run on. Prints how many
tasks wait; pausing a paused queue is not an error.
  --user ID   the user whose queue to pause (required)

${CONNECTION_HELP}`;

const RESUME_HELP = `Usage: tollgate resume --user ID [flags]

Resumes a paused queue (ResumeQueue): its tasks start again as the rate
policy allows. Prints how many tasks wait; resuming a running queue is not an
error.
  --user ID   the user whose queue to resume (required)

${CONNECTION_HELP}`;

export async function pauseCommand(args: readonly string[]): Promise<number> {
  return setPaused(args, "pause");
}

export async function resumeCommand(args: readonly string[]): Promise<number> {
  return setPaused(args, "resume");
}

async function setPaused(args: readonly string[], action: "pause" | "resume"): Promise<number> {
  const { values } = parse(args, { user: { type: "string" } });
  if (values.help) return help(action === "pause" ? PAUSE_HELP : RESUME_HELP);
  const userId = requireUser(values);
  const client = createTollgateClient(connection(values));
  const answer = action === "pause" ? await client.pauseQueue({ userId }) : await client.resumeQueue({ userId });
  const queued = Number(answer.queued);
  console.log(
    values.json
      ? JSON.stringify({ userId, paused: answer.paused, queued })
      : `${action === "pause" ? "paused" : "resumed"} ${userId} (${queued} queued)`,
  );
  return 0;
}

const HEALTH_HELP = `Usage: tollgate health [--service NAME] [flags]

Asks grpc.health.v1 whether the server is serving; exits 0 when it is, 1 when
it is not or cannot be reached.
  --service NAME   "" (the default) for the whole server, or tollgate.v1.TaskService

${CONNECTION_HELP}`;

export async function healthCommand(args: readonly string[]): Promise<number> {
  const { values } = parse(args, { service: { type: "string" } });
  if (values.help) return help(HEALTH_HELP);
  const client = createHealthClient(connection(values));
  const answer = await client.check({ service: values.service ?? "" }, { timeoutMs: 5_000 });
  const status = HealthCheckResponse_ServingStatus[answer.status];
  console.log(values.json ? JSON.stringify({ status }) : status);
  return answer.status === HealthCheckResponse_ServingStatus.SERVING ? 0 : 1;
}

const WORKER_HELP = `Usage: tollgate worker --kind KIND [--kind KIND ...] --exec COMMAND [flags]

Runs tasks of the given kinds for the server (WorkerService; with API keys on,
a key with the worker role): each task runs COMMAND with sh -c, at most
--concurrency at once.
  --kind KIND         a kind of task to run (required; repeat for several)
  --exec COMMAND      the shell command each task runs (required)
  --concurrency N     tasks at once, 1 to 1000 (default 1)
  --name NAME         a name for people, in the server's metrics and dashboard
  --grace DURATION    on SIGINT or SIGTERM, how long running tasks have to
                      finish and be answered (default 10s)

COMMAND gets the payload on its stdin and TOLLGATE_TASK_ID, TOLLGATE_USER_ID,
TOLLGATE_KIND and TOLLGATE_ATTEMPT in its environment; its stdout and stderr
are this command's, unprefixed. Its exit code decides the task:
  0      completed
  100    failed for good: dead-lettered now, not retried
  other  failed with "exit N: <the last line of its stderr>", retried while
         attempts remain
A cancelled task's command (CancelTask, its timeout) gets SIGTERM, to its whole
process group, then SIGKILL 5 s later. A lost connection is reopened (100 ms
doubling to 5 s); tasks unanswered on it run again. SIGINT or SIGTERM stops
the worker: no new tasks, running ones get --grace, then it exits 0 (those
still running are killed, unanswered, and run again). One line per connection
and per task's end on stderr (a JSON object each with --json). A refusal (a bad
--kind or --concurrency, a key without the worker role) exits 1 with its code.

${CONNECTION_HELP}`;

export async function workerCommand(args: readonly string[]): Promise<number> {
  const { values } = parse(args, {
    kind: { type: "string", multiple: true },
    exec: { type: "string" },
    concurrency: { type: "string" },
    name: { type: "string" },
    grace: { type: "string" },
  });
  if (values.help) return help(WORKER_HELP);
  const kinds = values.kind ?? [];
  if (kinds.length === 0 || kinds.includes("")) throw new UsageError("--kind is required (repeat it for several)");
  if (values.exec === undefined || values.exec.trim() === "") throw new UsageError("--exec is required");
  const concurrency = Number(values.concurrency ?? "1");
  if (!Number.isSafeInteger(concurrency) || concurrency < 1 || concurrency > 1000)
    throw new UsageError("--concurrency must be a whole number from 1 to 1000");
  const stopGraceMs = values.grace === undefined ? undefined : parseDuration("--grace", values.grace);
  const json = values.json === true;
  const log = (line: string, fields: Record<string, unknown>) =>
    console.error(json ? JSON.stringify(fields) : `tollgate worker: ${line}`);
  const tasks = execTasks(values.exec);
  const handler: WorkerHandler = async (task, context) => {
    const startedAt = Date.now();
    const what = `${task.taskId} attempt ${task.attempt} (kind ${task.kind}, user ${task.userId})`;
    const fields = { taskId: task.taskId, attempt: task.attempt, kind: task.kind, userId: task.userId };
    try {
      await tasks.handler(task, context);
      log(`${what}: completed in ${Date.now() - startedAt} ms`, { event: "completed", ...fields });
    } catch (error) {
      const reason = (error as Error).message;
      log(`${what}: failed: ${reason}`, { event: "failed", ...fields, error: reason });
      throw error;
    }
  };
  const worker = runWorker({
    ...connection(values),
    kinds,
    concurrency,
    handler,
    ...(values.name !== undefined ? { name: values.name } : {}),
    ...(stopGraceMs !== undefined ? { stopGraceMs } : {}),
    onEvent: (event) => {
      if (event.type === "connected") {
        const { workerId, heartbeatIntervalMs, attemptTimeoutMs } = event.welcome;
        log(`connected as ${workerId} (kinds ${kinds.join(", ")}; concurrency ${concurrency})`, {
          event: "connected",
          workerId,
          heartbeatIntervalMs,
          attemptTimeoutMs,
        });
      } else {
        const error = describeCallError(event.error);
        log(`connection lost: ${error}; reconnecting in ${event.reconnectInMs} ms`, {
          event: "disconnected",
          error,
          reconnectInMs: event.reconnectInMs,
        });
      }
    },
  });
  // The signals stop the worker gracefully instead of ending the process at once.
  const onSignal = (signal: NodeJS.Signals) => {
    log(`${signal}: stopping (running tasks get their grace)`, { event: "stopping", signal });
    void worker.stop();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    await worker.done;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    // Commands aborted at the end of the grace are being killed: not left behind.
    await tasks.exited();
  }
  return 0;
}

function help(text: string): number {
  console.log(text);
  return 0;
}

// The PolicyService commands (admin keys): `tollgate plan …` and
// `tollgate policy …`. A table (or one line) by default, --json for scripts.

const PLAN_HELP = `Usage: tollgate plan set NAME --limits 10/1s,1000/1m [--max-running N] [flags]
       tollgate plan list [flags]
       tollgate plan get NAME [flags]
       tollgate plan delete NAME [flags]

Named rate plans (PolicyService; admin keys only). Users are assigned a plan
with "tollgate policy set --user ID --plan NAME"; everyone else gets the plan
"default" (TOLLGATE_RATE_LIMITS until one is set). A change binds each
user's next start on every server at once.
  --limits WINDOWS    windows, limit/duration each: 10/1s,1000/1m (units s, m, h, d)
  --max-running N     tasks of one user running at once, across servers (0: no cap)

${CONNECTION_HELP}`;

const POLICY_HELP = `Usage: tollgate policy set --user ID (--plan NAME | --limits WINDOWS [--max-running N]) [--dry-run] [flags]
       tollgate policy get --user ID [flags]
       tollgate policy delete --user ID [flags]
       tollgate policy list [flags]
       tollgate policy global [--limits WINDOWS | --limits none | --delete] [flags]

A user's policy (PolicyService; admin keys only): a plan, or limits of its
own (an override). get prints the user's effective policy and where it comes
from (override, plan, or the default plan). delete gives the user the default
plan again. A change binds the user's next start on every server at once.
global prints the global limits (windows over every user together), sets
them (--limits; none for no global limit), or deletes the stored ones
(--delete: each server's TOLLGATE_GLOBAL_LIMITS binds again).
  --user ID           the user (required, except for list)
  --plan NAME         assign this plan
  --limits WINDOWS    an override: windows, limit/duration each: 5/1s,100/1m
  --max-running N     with --limits: tasks running at once, across servers
  --dry-run           change nothing: print when the user's last queued task
                      would start now and under the proposed policy

${CONNECTION_HELP}`;

function maxRunningOf(text: string | undefined): number {
  const value = Number(text ?? "0");
  if (!Number.isSafeInteger(value) || value < 0) throw new UsageError("--max-running must be a whole number from 0");
  return value;
}

function describePolicyMessage(policy: Policy | undefined): string {
  if (!policy) return "-";
  return policy.maxRunning > 0 ? `${policy.limits}, max running ${policy.maxRunning}` : policy.limits;
}

/** A header and rows, columns aligned. */
function table(rows: readonly (readonly string[])[]): string[] {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows.map((row) =>
    row
      .map((cell, column) => cell.padEnd(widths[column]!))
      .join("  ")
      .trimEnd(),
  );
}

function planRow(plan: Plan): string[] {
  return [
    plan.name,
    plan.policy?.limits ?? "-",
    plan.policy && plan.policy.maxRunning > 0 ? String(plan.policy.maxRunning) : "-",
    plan.fromConfig ? "TOLLGATE_RATE_LIMITS" : "stored",
  ];
}

export async function planCommand(args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(args, { limits: { type: "string" }, "max-running": { type: "string" } }, true);
  if (values.help) return help(PLAN_HELP);
  const [action, name, ...rest] = positionals;
  if (rest.length > 0) throw new UsageError(`unexpected ${rest.join(" ")}`);
  const client = createPolicyClient(connection(values));
  const print = (plans: readonly Plan[]): void => {
    if (values.json) for (const plan of plans) console.log(JSON.stringify(toJson(PlanSchema, plan)));
    else
      for (const line of table([["PLAN", "LIMITS", "MAX RUNNING", "FROM"], ...plans.map(planRow)])) console.log(line);
  };
  switch (action) {
    case "set": {
      if (!name) throw new UsageError("give the plan's name: plan set NAME --limits ...");
      if (values.limits === undefined) throw new UsageError("--limits is required");
      const { plan } = await client.setPlan({
        name,
        policy: { limits: values.limits, maxRunning: maxRunningOf(values["max-running"]) },
      });
      print(plan ? [plan] : []);
      return 0;
    }
    case "get": {
      if (!name) throw new UsageError("give the plan's name: plan get NAME");
      const { plan } = await client.getPlan({ name });
      print(plan ? [plan] : []);
      return 0;
    }
    case "delete": {
      if (!name) throw new UsageError("give the plan's name: plan delete NAME");
      const { deleted } = await client.deletePlan({ name });
      console.log(values.json ? JSON.stringify({ name, deleted }) : deleted ? `deleted ${name}` : `no plan ${name}`);
      return 0;
    }
    case "list": {
      if (name) throw new UsageError(`unexpected ${name}`);
      const plans: Plan[] = [];
      let pageToken = "";
      do {
        const page = await client.listPlans({ pageSize: 500, pageToken });
        plans.push(...page.plans);
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      print(plans);
      return 0;
    }
    default:
      throw new UsageError("give one action: set, list, get or delete");
  }
}

const SOURCE_NAMES: Readonly<Record<PolicySource, string>> = {
  [PolicySource.UNSPECIFIED]: "unknown",
  [PolicySource.OVERRIDE]: "override",
  [PolicySource.PLAN]: "plan",
  [PolicySource.DEFAULT]: "default",
};

export async function policyCommand(args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      user: { type: "string" },
      plan: { type: "string" },
      limits: { type: "string" },
      "max-running": { type: "string" },
      "dry-run": { type: "boolean" },
      delete: { type: "boolean" },
    },
    true,
  );
  if (values.help) return help(POLICY_HELP);
  const [action, ...rest] = positionals;
  if (rest.length > 0) throw new UsageError(`unexpected ${rest.join(" ")}`);
  const client = createPolicyClient(connection(values));
  switch (action) {
    case "set": {
      const userId = requireUser(values);
      if ((values.plan === undefined) === (values.limits === undefined))
        throw new UsageError("give --plan NAME or --limits WINDOWS, one of them");
      if (values.plan !== undefined && values["max-running"] !== undefined)
        throw new UsageError("--max-running goes with --limits (a plan has its own)");
      const answer = await client.setUserPolicy({
        userId,
        assignment:
          values.plan !== undefined
            ? { case: "plan", value: values.plan }
            : {
                case: "override",
                value: { limits: values.limits ?? "", maxRunning: maxRunningOf(values["max-running"]) },
              },
        dryRun: values["dry-run"] === true,
      });
      if (values.json) {
        console.log(JSON.stringify(toJson(SetUserPolicyResponseSchema, answer)));
        return 0;
      }
      const given = values.plan !== undefined ? `plan ${values.plan}` : `limits ${values.limits}`;
      if (!answer.dryRun) {
        console.log(`${userId}: ${given}`);
        return 0;
      }
      const forecast = answer.forecast;
      const when = (at: Timestamp | undefined) => (at ? timestampDate(at).toISOString() : "-");
      console.log(`dry run, nothing changed: ${userId} has ${forecast?.queued ?? 0} queued`);
      for (const line of table([
        ["", "POLICY", "LAST QUEUED TASK STARTS"],
        ["now", describePolicyMessage(forecast?.current), when(forecast?.lastStartNow)],
        ["proposed", describePolicyMessage(forecast?.proposed), when(forecast?.lastStartProposed)],
      ]))
        console.log(line);
      return 0;
    }
    case "get": {
      const userId = requireUser(values);
      const answer = await client.getUserPolicy({ userId });
      if (values.json) {
        console.log(JSON.stringify(toJson(GetUserPolicyResponseSchema, answer)));
        return 0;
      }
      const source = SOURCE_NAMES[answer.source];
      const from =
        answer.source === PolicySource.OVERRIDE
          ? "its own override"
          : answer.source === PolicySource.PLAN
            ? `plan ${answer.plan}`
            : answer.assignment?.assignment.case === "plan"
              ? `plan ${answer.plan} (assigned plan ${answer.assignment.assignment.value} does not exist)`
              : `plan ${answer.plan}`;
      for (const line of table([
        ["USER", "POLICY", "SOURCE", "FROM"],
        [userId, describePolicyMessage(answer.effective), source, from],
      ]))
        console.log(line);
      return 0;
    }
    case "delete": {
      const userId = requireUser(values);
      const { deleted } = await client.deleteUserPolicy({ userId });
      console.log(
        values.json
          ? JSON.stringify({ userId, deleted })
          : deleted
            ? `${userId}: back to the default plan`
            : `${userId} had no policy of its own`,
      );
      return 0;
    }
    case "list": {
      const rows: string[][] = [];
      let pageToken = "";
      do {
        const page = await client.listUserPolicies({ pageSize: 500, pageToken });
        for (const entry of page.userPolicies) {
          const { assignment } = entry;
          if (values.json) {
            console.log(
              JSON.stringify({
                userId: entry.userId,
                ...(assignment.case === "plan" ? { plan: assignment.value } : {}),
                ...(assignment.case === "override"
                  ? { limits: assignment.value.limits, maxRunning: assignment.value.maxRunning }
                  : {}),
              }),
            );
          }
          rows.push([
            entry.userId,
            assignment.case === "plan"
              ? `plan ${assignment.value}`
              : `override ${describePolicyMessage(assignment.value)}`,
          ]);
        }
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      if (!values.json) for (const line of table([["USER", "POLICY"], ...rows])) console.log(line);
      return 0;
    }
    case "global": {
      if (values.limits !== undefined && values.delete) throw new UsageError("give --limits or --delete, not both");
      if (values.delete) {
        const { deleted } = await client.deleteGlobalLimits({});
        console.log(
          values.json
            ? JSON.stringify({ deleted })
            : deleted
              ? "global limits deleted: TOLLGATE_GLOBAL_LIMITS binds again"
              : "no global limits were stored",
        );
        return 0;
      }
      const answer =
        values.limits !== undefined
          ? (await client.setGlobalLimits({ limits: values.limits })).globalLimits
          : (await client.getGlobalLimits({})).globalLimits;
      const limits = answer?.limits ?? "none";
      const from = answer?.fromConfig ? "TOLLGATE_GLOBAL_LIMITS" : "stored";
      console.log(
        values.json
          ? JSON.stringify({ limits, fromConfig: answer?.fromConfig ?? false })
          : `global limits: ${limits} (${from})`,
      );
      return 0;
    }
    default:
      throw new UsageError("give one action: set, get, delete, list or global");
  }
}
