import { pino, type Logger } from "pino";
import { PinoPretty } from "pino-pretty";
import type { LogFormat, LogLevel } from "./config.js";

export type { Logger };

/**
 * Logs on stdout: JSON lines for machines, or readable lines for people
 * (pino-pretty, written synchronously so that nothing is lost at exit) when
 * asked, or by default when stdout is a terminal. Secrets are redacted
 * wherever they may appear, in both.
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
