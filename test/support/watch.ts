import assert from "node:assert/strict";
import type { Client } from "@connectrpc/connect";
import type { TaskService, WatchQueueResponse } from "../../gen/ts/tollgate/v1/task_service_pb.js";

/** WatchQueue's first message (a snapshot), the stream then closed. */
export async function firstSnapshot(client: Client<typeof TaskService>, userId: string): Promise<WatchQueueResponse> {
  const stop = new AbortController();
  try {
    for await (const message of client.watchQueue({ userId }, { signal: stop.signal })) return message;
    assert.fail("WatchQueue sent no message");
  } finally {
    stop.abort();
  }
}
