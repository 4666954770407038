import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import { parseRatePolicy, type RatePolicy } from "./core/rate-policy.js";
import { parseRedisUrl } from "./redis/redis-url.js";
import { DEFAULT_PARTITIONS, MAX_PARTITIONS } from "./redis/partitions.js";

/** Everything the server reads from its environment, parsed and checked once. */
export interface Config {
  readonly host: string;
  readonly port: number;
  readonly workers: number;
  /** Unset: an embedded redis-server is started under dataDir. */
  readonly redisUrl: string | undefined;
  /** Start on a Redis whose maxmemory-policy may evict keys (warned, not refused). */
  readonly allowEviction: boolean;
  /** Replicas that must have a write (WAIT) before Submit answers or a task's state change goes on; 0: none. */
  readonly replicaAcks: number;
  /** How long WAIT may take for replicaAcks replicas. */
  readonly replicaAckTimeoutMs: number;
  /** Partitions users are spread over; fixed for the life of the data (checked against Redis at start). */
  readonly partitions: number;
  readonly dataDir: string;
  readonly ratePolicy: RatePolicy;
  /** Windows over every user together; empty: no global limit (PolicyService may store one). */
  readonly globalPolicy: RatePolicy;
  readonly maxBacklog: number;
  readonly concurrency: number;
  readonly maxAttempts: number;
  readonly taskTimeoutMs: number;
  readonly leaseMs: number;
  readonly retryBackoffMs: number;
  /**
   * Seconds a finished task's record, an idempotency key and an idle user's
   * counters are kept (src/redis/keys.ts has every key's lifetime).
   */
  readonly retentionSeconds: number;
  /** Seconds a dead-lettered task (record and place on its user's list) is kept. */
  readonly deadLetterRetentionSeconds: number;
  /** Dead letters kept per user; the oldest past it are deleted. */
  readonly deadLetterCap: number;
  readonly shutdownGraceMs: number;
  readonly heartbeatTimeoutMs: number;
  /** Module path of the task handlers; unset: the built-in task-log handler. */
  readonly handler: string | undefined;
  readonly requireKnownKinds: boolean;
  readonly taskLog: string;
  readonly maxPayloadBytes: number;
  readonly metricsPort: number;
  readonly authKeys: string | undefined;
  readonly tlsCert: string | undefined;
  readonly tlsKey: string | undefined;
  readonly tlsCa: string | undefined;
  readonly logLevel: LogLevel;
  readonly logFormat: LogFormat;
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
const LOG_FORMATS = ["auto", "json", "pretty"] as const;
/** auto: readable lines when stdout is a terminal, JSON lines otherwise. */
export type LogFormat = (typeof LOG_FORMATS)[number];

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

type Source = Readonly<Record<string, string | undefined>>;

interface Setting<T> {
  readonly env: string;
  readonly flag: string;
  readonly help: string;
  readonly defaultText: string;
  parse(value: string | undefined, resolved: Partial<Record<string, unknown>>): T;
}

function setting<T>(
  env: string,
  defaultText: string,
  help: string,
  parse: (value: string | undefined, resolved: Partial<Record<string, unknown>>) => T,
): Setting<T> {
  const flag = env
    .replace(/^TOLLGATE_/, "")
    .toLowerCase()
    .replaceAll("_", "-");
  return { env, flag, help, defaultText, parse };
}

function integer(min: number, max: number, what: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value.trim())) throw new ConfigError(`expected ${what}, got "${value}"`);
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new ConfigError(`expected ${what}, got "${value}"`);
    }
    return n;
  };
}

/** A whole-number setting within [min, max]; `what` names it in errors ("a port number"). */
function integerSetting(
  env: string,
  fallback: number,
  help: string,
  min: number,
  max: number,
  what: string,
  defaultText = String(fallback),
): Setting<number> {
  const parse = integer(min, max, `${what} from ${min} to ${max}`);
  return setting(env, defaultText, help, (v) => (v === undefined ? fallback : parse(v)));
}

const DURATION_UNIT_SECONDS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3_600, d: 86_400 };

/**
 * A duration setting in whole seconds, written `<n><unit>` (s, m, h or d:
 * "2s", "90m", "1d") or as plain seconds, within [minSeconds, maxSeconds].
 */
function durationSetting(
  env: string,
  fallback: string,
  help: string,
  minSeconds: number,
  maxSeconds: number,
): Setting<number> {
  const parse = (value: string): number => {
    const match = /^(\d+)([smhd]?)$/.exec(value.trim());
    const seconds = match ? Number(match[1]) * (DURATION_UNIT_SECONDS[match[2] || "s"] ?? 1) : NaN;
    if (!Number.isSafeInteger(seconds) || seconds < minSeconds || seconds > maxSeconds) {
      throw new ConfigError(
        `expected a duration like "30s", "12h" or "7d" (units s, m, h, d) from ${minSeconds}s to ${maxSeconds / 86_400}d, got "${value}"`,
      );
    }
    return seconds;
  };
  return setting(env, fallback, help, (v) => parse(optional(v) ?? fallback));
}

/** A file path, resolved against the working directory; unset stays unset. */
function pathSetting(env: string, defaultText: string, help: string): Setting<string | undefined> {
  return setting(env, defaultText, help, (v) => {
    const path = optional(v);
    return path === undefined ? undefined : resolve(path);
  });
}

const optional = (value: string | undefined): string | undefined =>
  value === undefined || value.trim() === "" ? undefined : value.trim();

function yesOrNo(v: string | undefined): boolean {
  const value = (optional(v) ?? "no").toLowerCase();
  if (value !== "yes" && value !== "no") throw new ConfigError(`expected yes or no, got "${value}"`);
  return value === "yes";
}

/** The settings, in the order docs/configuration.md documents them. */
export const SETTINGS = {
  host: setting("TOLLGATE_HOST", "0.0.0.0", "address to listen on", (v) => optional(v) ?? "0.0.0.0"),
  port: integerSetting("TOLLGATE_PORT", 50051, "gRPC port (0 picks a free one)", 0, 65535, "a port number"),
  workers: integerSetting(
    "TOLLGATE_WORKERS",
    availableParallelism(),
    "worker processes",
    1,
    1024,
    "a number of workers",
    "available parallelism",
  ),
  redisUrl: setting(
    "TOLLGATE_REDIS_URL",
    "unset: embedded redis-server",
    "Redis to use: redis://, rediss://, redis+sentinel://h:p,.../master, redis+cluster://h:p,...",
    (v) => {
      const url = optional(v);
      if (url !== undefined) {
        try {
          parseRedisUrl(url);
        } catch (error) {
          throw new ConfigError((error as Error).message);
        }
      }
      return url;
    },
  ),
  allowEviction: setting(
    "TOLLGATE_ALLOW_EVICTION",
    "no",
    "start even if Redis' maxmemory-policy is not noeviction (yes or no)",
    yesOrNo,
  ),
  replicaAcks: integerSetting(
    "TOLLGATE_REPLICA_ACKS",
    0,
    "replicas that must have each Submit and task state change before it counts (WAIT)",
    0,
    16,
    "a number of replicas",
  ),
  partitions: integerSetting(
    "TOLLGATE_PARTITIONS",
    DEFAULT_PARTITIONS,
    "partitions users are spread over (Redis Cluster slots); fixed for the life of the data",
    1,
    MAX_PARTITIONS,
    "a partition count",
  ),
  replicaAckTimeoutMs: integerSetting(
    "TOLLGATE_REPLICA_ACK_TIMEOUT_MS",
    1_000,
    "how long to wait for those replicas; Submit then answers UNAVAILABLE",
    // Under the 2 s command timeout, so that WAIT's own answer comes first.
    1,
    1_500,
    "a timeout in ms",
  ),
  dataDir: setting("TOLLGATE_DATA_DIR", "./.tollgate", "embedded Redis data and the task log", (v) =>
    resolve(optional(v) ?? ".tollgate"),
  ),
  ratePolicy: setting("TOLLGATE_RATE_LIMITS", "1/1s,20/1m", "per-user windows, limit/duration", (v) => {
    try {
      return parseRatePolicy(v ?? "1/1s,20/1m");
    } catch (error) {
      throw new ConfigError((error as Error).message);
    }
  }),
  globalPolicy: setting(
    "TOLLGATE_GLOBAL_LIMITS",
    "unset: none",
    "windows over all users together, limit/duration (PolicyService can set them at run time)",
    (v) => {
      const text = optional(v);
      if (text === undefined) return Object.freeze([]) as RatePolicy;
      try {
        return parseRatePolicy(text);
      } catch (error) {
        throw new ConfigError((error as Error).message);
      }
    },
  ),
  maxBacklog: integerSetting(
    "TOLLGATE_MAX_BACKLOG",
    10_000,
    "queued tasks per user before Submit refuses",
    1,
    100_000_000,
    "a backlog cap",
  ),
  concurrency: integerSetting(
    "TOLLGATE_CONCURRENCY",
    64,
    "tasks running at once per worker (0: run none here)",
    0,
    100_000,
    "a concurrency",
  ),
  maxAttempts: integerSetting(
    "TOLLGATE_MAX_ATTEMPTS",
    5,
    "attempts per task before it is dead-lettered",
    1,
    1000,
    "a number of attempts",
  ),
  taskTimeoutMs: integerSetting(
    "TOLLGATE_TASK_TIMEOUT_MS",
    30_000,
    "an attempt running longer fails",
    1,
    86_400_000,
    "a timeout in ms",
  ),
  leaseMs: integerSetting(
    "TOLLGATE_LEASE_MS",
    30_000,
    "running-task lease; a dead process's tasks rerun after it",
    300,
    3_600_000,
    "a lease in ms",
  ),
  retryBackoffMs: integerSetting(
    "TOLLGATE_RETRY_BACKOFF_MS",
    1_000,
    "backoff before the 2nd attempt; doubles, jittered",
    0,
    3_600_000,
    "a backoff in ms",
  ),
  retentionSeconds: durationSetting(
    "TOLLGATE_RETENTION",
    "1d",
    "how long finished tasks, idempotency keys and an idle user's counters are kept",
    1,
    366 * 86_400,
  ),
  deadLetterRetentionSeconds: durationSetting(
    "TOLLGATE_DEAD_LETTER_RETENTION",
    "7d",
    "how long a dead-lettered task is kept",
    1,
    366 * 86_400,
  ),
  deadLetterCap: integerSetting(
    "TOLLGATE_DEAD_LETTER_CAP",
    10_000,
    "dead letters kept per user; the oldest past it are deleted",
    1,
    1_000_000,
    "a dead-letter cap",
  ),
  shutdownGraceMs: integerSetting(
    "TOLLGATE_SHUTDOWN_GRACE_MS",
    10_000,
    "time running tasks get to finish on SIGTERM",
    0,
    3_600_000,
    "a grace in ms",
  ),
  heartbeatTimeoutMs: integerSetting(
    "TOLLGATE_HEARTBEAT_TIMEOUT_MS",
    10_000,
    "a worker silent this long is replaced",
    500,
    600_000,
    "a timeout in ms",
  ),
  handler: pathSetting("TOLLGATE_HANDLER", "built-in: append to the task log", "task handler module"),
  requireKnownKinds: setting(
    "TOLLGATE_REQUIRE_KNOWN_KINDS",
    "no",
    "Submit refuses a kind no handler module exports and no connected worker runs (yes or no; no: it waits for a worker)",
    yesOrNo,
  ),
  taskLog: setting("TOLLGATE_TASK_LOG", "<data dir>/tasks.log", "file the built-in handler appends to", (v, resolved) =>
    resolve(optional(v) ?? `${String(resolved.dataDir)}/tasks.log`),
  ),
  maxPayloadBytes: integerSetting(
    "TOLLGATE_MAX_PAYLOAD_BYTES",
    65_536,
    "largest task payload accepted",
    0,
    16 * 1024 * 1024,
    "a payload cap in bytes",
  ),
  metricsPort: integerSetting(
    "TOLLGATE_METRICS_PORT",
    9464,
    "HTTP port: Prometheus /metrics and the API for browsers (0 turns it off)",
    0,
    65535,
    "a port number",
  ),
  authKeys: pathSetting("TOLLGATE_AUTH_KEYS", "unset: no auth", "API key file (see docs/operations.md, Auth and TLS)"),
  tlsCert: setting("TOLLGATE_TLS_CERT", "unset: plaintext", "TLS certificate (PEM)", (v) => optional(v)),
  tlsKey: setting("TOLLGATE_TLS_KEY", "unset", "TLS private key (PEM)", (v) => optional(v)),
  tlsCa: setting("TOLLGATE_TLS_CA", "unset", "CA for client certificates (mutual TLS)", (v) => optional(v)),
  logLevel: setting("TOLLGATE_LOG_LEVEL", "info", LOG_LEVELS.join(", "), (v) => {
    const level = optional(v) ?? "info";
    if (!(LOG_LEVELS as readonly string[]).includes(level)) {
      throw new ConfigError(`expected one of ${LOG_LEVELS.join(", ")}, got "${level}"`);
    }
    return level as LogLevel;
  }),
  logFormat: setting(
    "TOLLGATE_LOG_FORMAT",
    "auto",
    "json (lines for machines), pretty (lines for people), auto: pretty when stdout is a terminal",
    (v) => {
      const format = optional(v) ?? "auto";
      if (!(LOG_FORMATS as readonly string[]).includes(format)) {
        throw new ConfigError(`expected one of ${LOG_FORMATS.join(", ")}, got "${format}"`);
      }
      return format as LogFormat;
    },
  ),
} satisfies { [K in keyof Config]: Setting<Config[K]> };

/**
 * Builds the config from environment variables and `--flag value` /
 * `--flag=value` arguments (flags win). Throws ConfigError naming the variable
 * or flag and what is wrong with its value.
 */
export function parseConfig(env: Source, args: readonly string[] = []): Config {
  const flags = parseFlags(args);
  const resolved: Partial<Record<string, unknown>> = {};
  for (const [name, spec] of Object.entries(SETTINGS) as [keyof Config, Setting<unknown>][]) {
    const fromFlag = flags.get(spec.flag);
    const raw = fromFlag ?? env[spec.env];
    try {
      resolved[name] = spec.parse(raw, resolved);
    } catch (error) {
      const source = fromFlag !== undefined ? `--${spec.flag}` : spec.env;
      throw new ConfigError(`${source}: ${(error as Error).message}`);
    }
  }
  const config = resolved as unknown as Config;
  if ((config.tlsCert === undefined) !== (config.tlsKey === undefined)) {
    throw new ConfigError("TOLLGATE_TLS_CERT and TOLLGATE_TLS_KEY must be set together");
  }
  if (config.tlsCa !== undefined && config.tlsCert === undefined) {
    throw new ConfigError("TOLLGATE_TLS_CA (client certificates) needs TOLLGATE_TLS_CERT and TOLLGATE_TLS_KEY");
  }
  return Object.freeze(config);
}

function parseFlags(args: readonly string[]): Map<string, string> {
  const known = new Set(Object.values(SETTINGS).map((spec) => spec.flag));
  const flags = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const match = /^--([a-z-]+)(?:=(.*))?$/s.exec(arg);
    if (!match) throw new ConfigError(`unexpected argument "${arg}"`);
    const [, name = "", inline] = match;
    if (!known.has(name)) throw new ConfigError(`unknown flag --${name} (see --help)`);
    const value = inline ?? args[++i];
    if (value === undefined) throw new ConfigError(`--${name} needs a value`);
    flags.set(name, value);
  }
  return flags;
}
