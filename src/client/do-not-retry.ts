/**
 * Thrown by a worker's handler to fail the attempt for good: the task is
 * dead-lettered at once instead of retried (TaskFailed.do_not_retry). Any
 * error with a `doNotRetry: true` property counts the same, so code that
 * cannot import this class can still say it.
 */
export class DoNotRetryError extends Error {
  override readonly name = "DoNotRetryError";
  readonly doNotRetry = true;
}

/** Whether a handler's error asks not to be retried. */
export function isDoNotRetry(error: unknown): boolean {
  return typeof error === "object" && error !== null && (error as { doNotRetry?: unknown }).doNotRetry === true;
}
