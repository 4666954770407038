import { ConfigError, SETTINGS, parseConfig } from "./config.js";
import { RedisServerMissingError } from "./embedded-redis.js";
import { serve } from "./serve.js";

const USAGE = `Usage: tollgate <command> [flags]

Commands:
  serve     run the server (what npm start runs)

Run "tollgate serve --help" for the server's flags.
Exit codes: 0 ok, 1 failure, 2 usage or configuration error.`;

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
  if (command !== "serve") {
    console.error(`tollgate: unknown command "${command}"\n\n${USAGE}`);
    return 2;
  }
  if (args.includes("--help") || args.includes("-h")) {
    console.log(serveHelp());
    return 0;
  }
  try {
    await serve(parseConfig(process.env, args));
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
