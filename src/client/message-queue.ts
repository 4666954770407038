/**
 * The request side of a bidi stream: messages pushed here are read by the
 * transport in order, and `end()` half-closes the stream once every message
 * pushed before it has been read. Unbounded, because what a worker sends
 * (one result per assignment, a heartbeat per interval) is bounded by the
 * server's own pace; messages pushed after `end()` are dropped.
 */
export class MessageQueue<T> implements AsyncIterable<T> {
  readonly #items: T[] = [];
  #wake: (() => void) | undefined;
  #ended = false;

  /** Whether `end()` was called. */
  get ended(): boolean {
    return this.#ended;
  }

  push(item: T): void {
    if (this.#ended) return;
    this.#items.push(item);
    this.#wake?.();
  }

  end(): void {
    this.#ended = true;
    this.#wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      const item = this.#items.shift();
      if (item !== undefined) {
        yield item;
        continue;
      }
      if (this.#ended) return;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
      this.#wake = undefined;
    }
  }
}
