/**
 * The forms TOLLGATE_REDIS_URL takes, parsed into what a client needs. No
 * ioredis here: config.ts validates the URL with it at start, and
 * connection.ts builds the client from its result.
 *
 * - `redis://…`, `rediss://…`: one server, handed to ioredis as it is.
 * - `redis+sentinel://[[user]:password@]host:port[,host:port…]/<master name>[?sentinel_password=…]`:
 *   the sentinels to ask for the master; userinfo authenticates to the data
 *   nodes (master and replicas), `sentinel_password` (and `sentinel_username`)
 *   to the sentinels, since they often have no password or another one.
 * - `redis+cluster://[[user]:password@]host:port[,host:port…]` and
 *   `rediss+cluster://…` (TLS): seed nodes of a Redis Cluster; userinfo
 *   authenticates to every node.
 */
export type RedisTarget =
  | { readonly kind: "standalone"; readonly url: string }
  | {
      readonly kind: "sentinel";
      readonly sentinels: readonly HostPort[];
      readonly masterName: string;
      readonly auth: Auth;
      readonly sentinelAuth: Auth;
    }
  | { readonly kind: "cluster"; readonly nodes: readonly HostPort[]; readonly auth: Auth; readonly tls: boolean };

export type RedisKind = RedisTarget["kind"];

interface HostPort {
  readonly host: string;
  readonly port: number;
}

interface Auth {
  readonly username: string | undefined;
  readonly password: string | undefined;
}

/** Thrown for a URL Tollgate cannot use; its message says what is wrong (config.ts makes it a ConfigError). */
export class RedisUrlError extends Error {
  override readonly name = "RedisUrlError";
}

const DEFAULT_SENTINEL_PORT = 26379;
const DEFAULT_REDIS_PORT = 6379;
const SENTINEL_QUERY = new Set(["sentinel_username", "sentinel_password"]);
const FORMS =
  "redis://host:port, rediss://host:port, redis+sentinel://host:port[,host:port...]/<master name> " +
  "or redis+cluster://host:port[,host:port...] (rediss+cluster:// for TLS)";

/** The URL without its passwords (userinfo and sentinel_password), for logs and messages. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, "//***@").replace(/([?&]sentinel_password=)[^&]*/g, "$1***");
}

/** Parses and checks TOLLGATE_REDIS_URL; throws RedisUrlError naming the fault. */
export function parseRedisUrl(url: string): RedisTarget {
  const shown = redactUrl(url);
  const match = /^([a-z+]+):\/\/(?:([^@/?#]*)@)?([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?$/.exec(url);
  if (!match || /\s/.test(url)) throw new RedisUrlError(`expected ${FORMS}, got "${shown}"`);
  const [, scheme = "", userinfo, hostList = "", path = "", query = ""] = match;
  switch (scheme) {
    case "redis":
    case "rediss":
      if (hostList === "") throw new RedisUrlError(`"${shown}" names no host`);
      return { kind: "standalone", url };
    case "redis+sentinel": {
      const masterName = decode(path.replace(/^\//, ""), shown);
      if (masterName === "" || masterName.includes("/")) {
        throw new RedisUrlError(`"${shown}" must end with /<master name> (the name the sentinels monitor)`);
      }
      const params = new URLSearchParams(query);
      for (const name of params.keys()) {
        if (!SENTINEL_QUERY.has(name)) {
          throw new RedisUrlError(
            `"${shown}" has an unknown parameter "${name}" (only sentinel_username and sentinel_password)`,
          );
        }
      }
      return {
        kind: "sentinel",
        sentinels: hostPorts(hostList, DEFAULT_SENTINEL_PORT, shown),
        masterName,
        auth: parseAuth(userinfo, shown),
        sentinelAuth: {
          username: params.get("sentinel_username") ?? undefined,
          password: params.get("sentinel_password") ?? undefined,
        },
      };
    }
    case "redis+cluster":
    case "rediss+cluster":
      if (path !== "" && path !== "/") {
        throw new RedisUrlError(`"${shown}" has a path; a Cluster URL has none (a Cluster has only database 0)`);
      }
      if (query !== "") throw new RedisUrlError(`"${shown}" has parameters; a Cluster URL takes none`);
      return {
        kind: "cluster",
        nodes: hostPorts(hostList, DEFAULT_REDIS_PORT, shown),
        auth: parseAuth(userinfo, shown),
        tls: scheme === "rediss+cluster",
      };
    default:
      throw new RedisUrlError(`unknown scheme "${scheme}://" in "${shown}": expected ${FORMS}`);
  }
}

function hostPorts(list: string, defaultPort: number, shown: string): HostPort[] {
  if (list === "") throw new RedisUrlError(`"${shown}" names no host`);
  return list.split(",").map((entry) => {
    // [v6::address]:port, host:port, or a host alone (the default port).
    const parts = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d+))?$/.exec(entry);
    const port = parts?.[2] === undefined ? defaultPort : Number(parts[2]);
    if (!parts || port < 1 || port > 65535) {
      throw new RedisUrlError(`"${shown}": "${entry}" is not host:port`);
    }
    return { host: parts[1]!.replace(/^\[(.*)\]$/, "$1"), port };
  });
}

function parseAuth(userinfo: string | undefined, shown: string): Auth {
  if (userinfo === undefined) return { username: undefined, password: undefined };
  const colon = userinfo.indexOf(":");
  const user = decode(colon < 0 ? userinfo : userinfo.slice(0, colon), shown);
  const password = colon < 0 ? undefined : decode(userinfo.slice(colon + 1), shown);
  // redis://:password@ is the classic form: no user name, the default user.
  return { username: user === "" ? undefined : user, password: password === "" ? undefined : password };
}

function decode(text: string, shown: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new RedisUrlError(`"${shown}" has a malformed %-escape`);
  }
}
