/** A worker's reconnects: 100 ms doubling to 5 s, each wait drawn between half and all of that. */
const WORKER_RECONNECT = { baseMs: 100, maxMs: 5_000 } as const;

/**
 * The wait before a worker's `attempt`th reconnect in a row (1 for the first
 * after a session that was welcomed). Jittered ("equal jitter": between half
 * and all of the capped doubling) so that workers cut off together by a
 * server restart do not all come back in the same millisecond; `random` is
 * injectable for tests.
 */
export function reconnectDelayMs(attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(
    WORKER_RECONNECT.maxMs,
    WORKER_RECONNECT.baseMs * 2 ** Math.min(Math.max(attempt, 1) - 1, 30),
  );
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
