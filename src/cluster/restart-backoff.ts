/** Worker restarts: a worker that dies within 10 s of starting keeps dying; its replacements wait 250 ms doubling to 30 s. */
export const WORKER_RESTART = { baseMs: 250, maxMs: 30_000, stableAfterMs: 10_000 } as const;

/**
 * The wait before replacing a worker that exited. Unlike the embedded Redis'
 * RestartBackoff (src/redis/embedded-redis.ts), whose every restart waits, a
 * worker's first replacement is immediate, so a single crash costs no
 * capacity: only runs shorter than `stableAfterMs` count as crashes, the
 * first crash in a row is replaced at once, and each one after it waits
 * `baseMs`, `2 * baseMs`, ... up to `maxMs`. A run that lasted `stableAfterMs`
 * starts the count again.
 */
export class WorkerRestartBackoff {
  private crashes = 0;

  constructor(
    private readonly options: {
      readonly baseMs: number;
      readonly maxMs: number;
      readonly stableAfterMs: number;
    } = WORKER_RESTART,
  ) {}

  /** Crashes in a row so far, counting the last exit. */
  get crashesInARow(): number {
    return this.crashes;
  }

  /** The delay before replacing a worker whose run lasted `livedMs`. */
  next(livedMs: number): number {
    this.crashes = livedMs < this.options.stableAfterMs ? this.crashes + 1 : 0;
    if (this.crashes <= 1) return 0;
    return Math.min(this.options.maxMs, this.options.baseMs * 2 ** Math.min(this.crashes - 2, 30));
  }
}
