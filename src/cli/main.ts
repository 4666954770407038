import { ConfigError, SETTINGS, parseConfig } from "../config.js";
import { RedisServerMissingError } from "../redis/embedded-redis.js";

const USAGE = `Usage: tollgate <command> [flags]

Commands:
  serve     run the server (what npm start runs)
  submit    submit tasks for a user (--count N, --watch)
  watch     a live progress bar of a queue draining
  task      a task's state, attempts and timestamps
  tasks     list a user's queued, running or dead tasks
  cancel    cancel a task that has not started or waits to retry
  purge     cancel every task a user has queued (--user ID)
  pause     pause a user's queue: nothing of it starts (--user ID)
  resume    resume a paused queue (--user ID)
  queues    list every user's queue, largest backlog first (admins)
  dead      requeue or purge a user's dead-lettered tasks
  plan      set, list, show or delete rate plans (admins)
  policy    set, show or delete a user's plan or own limits (admins)
  health    whether the server is serving (exit 0) or not (exit 1)
  worker    run tasks of some kinds with a shell command (--kind K --exec CMD)

Run "tollgate <command> --help" for its flags.
Exit codes: 0 ok, 1 the call failed (the error is printed with its gRPC code),
2 usage or configuration error.`;

/** The client commands' names in commands.ts, loaded only when one runs (serve needs none of the client). */
const CLIENT_COMMANDS: Readonly<
  Record<
    string,
    | "submitCommand"
    | "watchCommand"
    | "taskCommand"
    | "tasksCommand"
    | "cancelCommand"
    | "purgeCommand"
    | "pauseCommand"
    | "resumeCommand"
    | "queuesCommand"
    | "deadCommand"
    | "planCommand"
    | "policyCommand"
    | "healthCommand"
    | "workerCommand"
  >
> = {
  submit: "submitCommand",
  watch: "watchCommand",
  task: "taskCommand",
  tasks: "tasksCommand",
  cancel: "cancelCommand",
  purge: "purgeCommand",
  pause: "pauseCommand",
  resume: "resumeCommand",
  queues: "queuesCommand",
  dead: "deadCommand",
  plan: "planCommand",
  policy: "policyCommand",
  health: "healthCommand",
  worker: "workerCommand",
};

function serveHelp(): string {
  const rows = Object.values(SETTINGS).map(
    (spec) => `  --${spec.flag.padEnd(20)} ${spec.env.padEnd(28)} ${spec.help} (default: ${spec.defaultText})`,
  );
  return `Usage: tollgate serve [flags]\n\nEvery flag has an environment variable; the flag wins.\n\n${rows.join("\n")}`;
}

export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...args] = argv;
  if (command === undefined || command === "--help" || command === "-h" || command === "help") {
    console.log(USAGE);
    return command === undefined ? 2 : 0;
  }
  const clientCommand = Object.hasOwn(CLIENT_COMMANDS, command) ? CLIENT_COMMANDS[command] : undefined;
  if (clientCommand) {
    const commands = await import("./commands.js");
    const { UsageError, describeCallError } = commands;
    try {
      return await commands[clientCommand](args);
    } catch (error) {
      if (error instanceof UsageError) {
        console.error(`tollgate ${command}: ${error.message} (see tollgate ${command} --help)`);
        return 2;
      }
      console.error(`tollgate ${command}: ${describeCallError(error)}`);
      return 1;
    }
  }
  if (command !== "serve") {
    console.error(`tollgate: unknown command "${command}"\n\n${USAGE}`);
    return 2;
  }
  if (args.includes("--help") || args.includes("-h")) {
    console.log(serveHelp());
    return 0;
  }
  try {
    const config = parseConfig(process.env, args);
    // Loaded only for serve, so client commands start without the server's modules.
    const { serve } = await import("../serve.js");
    await serve(config);
    return -1; // keeps running until a signal
  } catch (error) {
    if (error instanceof ConfigError || error instanceof RedisServerMissingError) {
      console.error(`tollgate: ${error.message}`);
      return 2;
    }
    console.error(`tollgate: ${(error as Error).message}`);
    return 1;
  }
}
