import { invalidArgument, type ServiceError } from "./service-error.js";

/**
 * The envelope of the listing methods' page tokens: base64url of a small JSON
 * object, opaque to clients. Each listing puts its own fields in it (a
 * version, which listing it is, its cursor) and checks them when it reads one
 * back; a token that is not even an envelope is refused here.
 */

const MAX_TOKEN_LENGTH = 1024;

export function encodePageToken(fields: object): string {
  return Buffer.from(JSON.stringify(fields), "utf8").toString("base64url");
}

/** INVALID_ARGUMENT naming page_token, for a token that is not one of `listing`'s. */
export function malformedPageToken(listing: string): ServiceError {
  return invalidArgument(
    "page_token",
    `is not a page token of ${listing}; pass next_page_token from the page before unchanged, or none for the first page`,
  );
}

/** The token's fields; the listing checks them (malformedPageToken when they are not its own). */
export function decodePageToken(text: string, listing: string): Record<string, unknown> {
  if (!/^[A-Za-z0-9_-]+$/.test(text) || text.length > MAX_TOKEN_LENGTH) throw malformedPageToken(listing);
  let token: unknown;
  try {
    token = JSON.parse(Buffer.from(text, "base64url").toString("utf8"));
  } catch {
    throw malformedPageToken(listing);
  }
  if (typeof token !== "object" || token === null) throw malformedPageToken(listing);
  return token as Record<string, unknown>;
}
