import { createRequire } from "node:module";
import { pino, type Logger } from "pino";
import type { LogFormat, LogLevel } from "./config.js";

export type { Logger };

/**
 * Logs on stdout: JSON lines for machines, or readable lines for people
 * (pino-pretty, written synchronously so that nothing is lost at exit) when
 * asked, or by default when stdout is a terminal. Secrets are redacted
 * wherever they may appear, in both. pino-pretty is loaded only for readable
 * lines (about 20 ms of a start that logs JSON).
 */
export function createLogger(
  level: LogLevel,
  bindings: Record<string, unknown> = {},
  format: LogFormat = "json",
): Logger {
  const options = {
    level,
    base: { pid: process.pid, ...bindings },
    redact: {
      paths: ["authorization", "apiKey", "*.authorization", "*.apiKey", "redisUrl", "*.redisUrl"],
      censor: "[redacted]",
    },
  };
  const pretty = format === "pretty" || (format === "auto" && process.stdout.isTTY === true);
  if (!pretty) return pino(options);
  const { PinoPretty } = createRequire(import.meta.url)("pino-pretty") as typeof import("pino-pretty");
  return pino(
    options,
    PinoPretty({
      sync: true,
      colorize: process.stdout.isTTY === true,
      translateTime: "SYS:HH:MM:ss.l",
      ignore: "hostname",
      singleLine: true,
    }),
  );
}
