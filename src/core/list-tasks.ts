import { actingUserId, authorizeList, type Identity } from "./authorization.js";
import { decodePageToken, encodePageToken, malformedPageToken } from "./page-token.js";
import { invalidArgument } from "./service-error.js";
import type { ListedTask, ListState, TaskStore } from "./store.js";
import { isTaskId } from "./task-id.js";
import { checkUserId } from "./validation.js";

// The rules of ListTasks: what a request must look like, who may list whose
// tasks, page sizes, and the page tokens that carry a listing from one page
// to the next. Each check throws ServiceError.

const DEFAULT_PAGE_SIZE = 50;
/** A larger page_size is taken as this (not refused), so a client asking for "everything" still gets pages. */
const MAX_PAGE_SIZE = 500;

/** A request's page_size as a listing takes it: the default for 0, the maximum for more than it (ListTasks, ListQueues). */
export function pageSizeOf(requested: number): number {
  return requested === 0 ? DEFAULT_PAGE_SIZE : Math.min(requested, MAX_PAGE_SIZE);
}

export interface ListTasksRequest {
  /** Empty: the user of the caller's key. */
  readonly userId: string;
  /** undefined when the request named none (or one this server does not know). */
  readonly state: ListState | undefined;
  /** 0: the default. */
  readonly pageSize: number;
  /** Empty for the first page. */
  readonly pageToken: string;
}

/** A checked request: whose tasks, which, how many, and after which cursor. */
export interface ListQuery {
  readonly userId: string;
  readonly state: ListState;
  readonly pageSize: number;
  readonly after: string | undefined;
}

export interface ListTasksResult {
  readonly tasks: readonly ListedTask[];
  /** Empty after the last page. */
  readonly nextPageToken: string;
}

/**
 * A page token: base64url of a small JSON object naming the listing it
 * belongs to (user and state) and the store's cursor (the last task id the
 * page looked at). Opaque to clients; version 1.
 */
interface PageToken {
  readonly v: 1;
  readonly u: string;
  readonly s: ListState;
  readonly a: string;
}

const LIST_STATES: ReadonlySet<string> = new Set<ListState>(["queued", "running", "dead"]);

function decodeTasksToken(text: string): PageToken {
  const malformed = malformedPageToken("ListTasks");
  const { v, u, s, a } = decodePageToken(text, "ListTasks");
  if (v !== 1 || typeof u !== "string" || typeof s !== "string" || !LIST_STATES.has(s)) throw malformed;
  if (typeof a !== "string" || !isTaskId(a)) throw malformed;
  return { v, u, s: s as ListState, a };
}

/** ListTasks' request, checked and authorized, before anything is read. */
export function checkListTasks(caller: Identity, request: ListTasksRequest): ListQuery {
  const userId = actingUserId(caller, request.userId);
  checkUserId(userId);
  const { state } = request;
  if (state === undefined) throw invalidArgument("state", "is required: QUEUED, RUNNING or DEAD");
  authorizeList(caller, userId);
  let after: string | undefined;
  if (request.pageToken !== "") {
    const token = decodeTasksToken(request.pageToken);
    if (token.u !== userId || token.s !== state) {
      throw invalidArgument(
        "page_token",
        "does not belong to this listing (it continues another user's or another state's); start again without one",
      );
    }
    after = token.a;
  }
  return { userId, state, pageSize: pageSizeOf(request.pageSize), after };
}

/** One page of a checked listing, and the token of the next. */
export async function listTasks(store: Pick<TaskStore, "listTasks">, query: ListQuery): Promise<ListTasksResult> {
  const page = await store.listTasks(query.userId, query.state, { pageSize: query.pageSize, after: query.after });
  return {
    tasks: page.tasks,
    nextPageToken:
      page.next === undefined ? "" : encodePageToken({ v: 1, u: query.userId, s: query.state, a: page.next }),
  };
}
