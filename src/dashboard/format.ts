// How the dashboard writes times, counts and durations.
import { timestampMs, type Timestamp } from "@bufbuild/protobuf/wkt";

export function count(value: bigint | number): string {
  return Number(value).toLocaleString("en-US");
}

/** "in 3 s", "in 2 min", "now", "—". */
export function fromNow(at: Timestamp | undefined, now = Date.now()): string {
  if (!at) return "—";
  const ms = timestampMs(at) - now;
  if (ms <= 500) return "now";
  if (ms < 90_000) return `in ${Math.round(ms / 1000)} s`;
  if (ms < 90 * 60_000) return `in ${Math.round(ms / 60_000)} min`;
  return `in ${(ms / 3_600_000).toFixed(1)} h`;
}

export function time(at: Timestamp | undefined): string {
  return at
    ? new Date(timestampMs(at))
        .toISOString()
        .replace("T", " ")
        .replace(/\.\d+Z$/, "Z")
    : "—";
}
