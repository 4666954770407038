import { pino, type Logger } from "pino";
import type { LogLevel } from "./config.js";

export type { Logger };

/** JSON logs on stdout. Secrets are redacted wherever they may appear. */
export function createLogger(level: LogLevel, bindings: Record<string, unknown> = {}): Logger {
  return pino({
    level,
    base: { pid: process.pid, ...bindings },
    redact: {
      paths: ["authorization", "apiKey", "*.authorization", "*.apiKey", "redisUrl", "*.redisUrl"],
      censor: "[redacted]",
    },
  });
}
