import { authorizeListQueues, type Identity } from "./authorization.js";
import { pageSizeOf } from "./list-tasks.js";
import { decodePageToken, encodePageToken, malformedPageToken } from "./page-token.js";
import type { QueueSummary, TaskStore } from "./store.js";

// The rules of ListQueues: who may list every user's queue, the order (the
// largest backlog first, then by user id), page sizes, and the page tokens
// that carry a listing from one page to the next. Each check throws
// ServiceError.
//
// The order follows counts that change while tasks drain or arrive, so no
// cursor can keep it exact across pages without a snapshot. A page token
// holds the last user of its page with its backlog then; the next page is
// computed afresh and continues below that (backlog, user id) in the order
// of the moment. While nothing changes every user is listed once; a user
// whose backlog changed between pages may be listed twice or skipped.

export interface ListQueuesRequest {
  /** 0: the default. */
  readonly pageSize: number;
  /** Empty for the first page. */
  readonly pageToken: string;
}

/** Where a page continues: below this (backlog, user id) in the order. */
interface QueuesCursor {
  readonly backlog: number;
  readonly userId: string;
}

/** A checked request: how many, and after which cursor. */
export interface QueuesQuery {
  readonly pageSize: number;
  readonly after: QueuesCursor | undefined;
}

export interface ListQueuesResult {
  readonly queues: readonly QueueSummary[];
  /** Empty after the last page. */
  readonly nextPageToken: string;
}

/**
 * A page token: base64url of a small JSON object marked as ListQueues' (l),
 * with the cursor: the last listed user's backlog (b) and id (u). Opaque to
 * clients; version 1.
 */
interface PageToken {
  readonly v: 1;
  readonly l: "queues";
  readonly b: number;
  readonly u: string;
}

/** What ListQueues orders by: tasks waiting to start, queued or waiting to retry. */
function backlogOf(queue: QueueSummary): number {
  return queue.queued + queue.waitingToRetry;
}

/** The listing's order: the larger backlog first, then by user id (UTF-16 code units, as JavaScript compares strings). */
function compareQueues(a: QueuesCursor, b: QueuesCursor): number {
  if (a.backlog !== b.backlog) return b.backlog - a.backlog;
  if (a.userId === b.userId) return 0;
  return a.userId < b.userId ? -1 : 1;
}

function encodeQueuesToken(cursor: QueuesCursor): string {
  const token: PageToken = { v: 1, l: "queues", b: cursor.backlog, u: cursor.userId };
  return encodePageToken(token);
}

function decodeQueuesToken(text: string): QueuesCursor {
  const malformed = malformedPageToken("ListQueues");
  const { v, l, b, u } = decodePageToken(text, "ListQueues");
  if (v !== 1 || l !== "queues") throw malformed;
  if (typeof b !== "number" || !Number.isSafeInteger(b) || b < 0) throw malformed;
  if (typeof u !== "string" || u === "") throw malformed;
  return { backlog: b, userId: u };
}

/** ListQueues' request, checked and authorized, before anything is read. */
export function checkListQueues(caller: Identity, request: ListQueuesRequest): QueuesQuery {
  authorizeListQueues(caller);
  const after = request.pageToken === "" ? undefined : decodeQueuesToken(request.pageToken);
  return { pageSize: pageSizeOf(request.pageSize), after };
}

/** One page of `queues` (any order) for `query`: ordered, below the cursor, at most a page, and the next page's token. */
export function pageOfQueues(queues: readonly QueueSummary[], query: QueuesQuery): ListQueuesResult {
  const keyOf = (queue: QueueSummary): QueuesCursor => ({ backlog: backlogOf(queue), userId: queue.userId });
  const { after } = query;
  const rest = queues
    .filter((queue) => after === undefined || compareQueues(keyOf(queue), after) > 0)
    .sort((a, b) => compareQueues(keyOf(a), keyOf(b)));
  const page = rest.slice(0, query.pageSize);
  const last = page.at(-1);
  return {
    queues: page,
    nextPageToken: rest.length > query.pageSize && last ? encodeQueuesToken(keyOf(last)) : "",
  };
}

/** One page of a checked listing, and the token of the next. */
export async function listQueues(store: Pick<TaskStore, "listQueues">, query: QueuesQuery): Promise<ListQueuesResult> {
  return pageOfQueues(await store.listQueues(), query);
}
