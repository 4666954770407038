import type { ListTasksRequest as CoreListTasksRequest } from "../core/list-tasks.js";
import type { ListState as CoreListState } from "../core/store.js";
import { ListState, type ListTasksRequest } from "../../gen/ts/tollgate/v1/task_service_pb.js";

// ListTasks' request message in the core's terms.

const LIST_STATES: ReadonlyMap<ListState, CoreListState> = new Map([
  [ListState.QUEUED, "queued"],
  [ListState.RUNNING, "running"],
  [ListState.DEAD, "dead"],
]);

/** The request as the core checks it: an unspecified (or unknown) state is none. */
export function listTasksRequest(request: ListTasksRequest): CoreListTasksRequest {
  return {
    userId: request.userId,
    state: LIST_STATES.get(request.state),
    pageSize: request.pageSize,
    pageToken: request.pageToken,
  };
}
