import { createHash, timingSafeEqual } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { Metadata } from "@grpc/grpc-js";
import { ConfigError } from "../config.js";
import { ANYONE, type Identity } from "../core/authorization.js";
import { checkUserId } from "../core/validation.js";

export interface Authenticator {
  readonly enabled: boolean;
  /** The caller's identity, or undefined when auth is on and the key is missing or unknown. */
  identify(metadata: Metadata): Identity | undefined;
}

const openAccess: Authenticator = { enabled: false, identify: () => ANYONE };

interface KeyEntry {
  readonly digest: Buffer;
  readonly identity: Identity;
}

const KEY_PATTERN = /^[A-Za-z0-9._~+/=-]{16,256}$/;

const digest = (key: string): Buffer => createHash("sha256").update(key).digest();

/**
 * Parses an API key file: one key per line, `<key> <role>`, where role is
 * `admin`, `worker` (runs tasks over WorkerService) or `user:<user id>`; blank lines and lines starting with # are
 * ignored. Keys are 16 to 256 characters of [A-Za-z0-9._~+/=-]. Only the keys'
 * SHA-256 digests are kept. Throws ConfigError naming the line.
 */
export function parseApiKeys(text: string, source = "TOLLGATE_AUTH_KEYS"): Authenticator {
  const entries: KeyEntry[] = [];
  const seen = new Set<string>();
  text.split("\n").forEach((raw, index) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const where = `${source} line ${index + 1}`;
    const match = /^(\S+)\s+(.+)$/.exec(line);
    if (!match) throw new ConfigError(`${where}: expected "<key> admin", "<key> worker" or "<key> user:<user id>"`);
    const [, key = "", role = ""] = match;
    if (!KEY_PATTERN.test(key)) {
      throw new ConfigError(`${where}: a key is 16 to 256 characters of letters, digits and ._~+/=-`);
    }
    const hex = digest(key).toString("hex");
    if (seen.has(hex)) throw new ConfigError(`${where}: this key appears twice`);
    seen.add(hex);
    let identity: Identity;
    if (role === "admin") {
      // The digest's first 48 bits name the key in logs; they do not reveal it.
      identity = { kind: "admin", keyId: hex.slice(0, 12) };
    } else if (role === "worker") {
      identity = { kind: "worker", keyId: hex.slice(0, 12) };
    } else if (role.startsWith("user:")) {
      const userId = role.slice("user:".length);
      try {
        checkUserId(userId, "user id");
      } catch (error) {
        throw new ConfigError(`${where}: ${(error as Error).message}`);
      }
      identity = { kind: "user", userId };
    } else {
      throw new ConfigError(`${where}: the role must be "admin", "worker" or "user:<user id>"`);
    }
    entries.push({ digest: Buffer.from(hex, "hex"), identity });
  });
  if (entries.length === 0) throw new ConfigError(`${source}: the file has no keys`);
  return {
    enabled: true,
    identify: (metadata) => {
      const header = metadata.get("authorization")[0];
      const match = typeof header === "string" ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
      if (!match) return undefined;
      const presented = digest(match[1]!);
      // Every entry is compared, in constant time, whether or not one matched.
      let found: Identity | undefined;
      for (const entry of entries) {
        if (timingSafeEqual(presented, entry.digest)) found = entry.identity;
      }
      return found;
    },
  };
}

/** The authenticator for TOLLGATE_AUTH_KEYS, or open access when it is unset. */
export async function loadAuthenticator(path: string | undefined): Promise<Authenticator> {
  if (path === undefined) return openAccess;
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new ConfigError(
      `TOLLGATE_AUTH_KEYS: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  return parseApiKeys(text);
}
