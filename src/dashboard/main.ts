// Tollgate's dashboard: queues draining live, one user's queue to operate,
// a task lookup, and starts and lateness over the last minutes. Every call
// goes through the generated TaskService client over the Connect protocol
// (api.ts), behind the same checks as gRPC. Pages by the URL's hash:
// #/ (queues), #/user/<id>, #/task/<id>, #/plans, #/workers.
import "uplot/dist/uPlot.min.css";
import "./style.css";
import { html } from "htm/preact";
import { render } from "preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import type { QueueSummary, Task, WatchQueueResponse } from "../../gen/ts/tollgate/v1/task_service_pb.js";
import { ListState, TaskState } from "../../gen/ts/tollgate/v1/task_service_pb.js";
import { apiKey, describeError, isPermissionDenied, isUnauthenticated, setApiKey, tasks } from "./api.js";
import { count, fromNow, time } from "./format.js";
import { parseMetrics, pointBetween, type MetricsPoint, type MetricsSample } from "./metrics.js";
import { PlansPage, UserPolicyPanel } from "./policy-views.js";
import { WorkersPage } from "./workers-view.js";

const QUEUES_REFRESH_MS = 1_000;
const METRICS_REFRESH_MS = 2_000;
const LISTS_REFRESH_MS = 3_000;
/** Points the chart keeps: 5 minutes. */
const CHART_POINTS = 150;

type Route =
  | { readonly page: "queues" }
  | { readonly page: "plans" }
  | { readonly page: "workers" }
  | { readonly page: "user"; readonly id: string }
  | { readonly page: "task"; readonly id: string };

function routeOf(hash: string): Route {
  const [, page = "", id = ""] = hash.split("/").map((part) => decodeURIComponent(part));
  if (page === "user" && id !== "") return { page: "user", id };
  if (page === "task" && id !== "") return { page: "task", id };
  if (page === "plans") return { page: "plans" };
  if (page === "workers") return { page: "workers" };
  return { page: "queues" };
}

const link = (route: Route): string =>
  route.page === "queues"
    ? "#/"
    : route.page === "plans" || route.page === "workers"
      ? `#/${route.page}`
      : `#/${route.page}/${encodeURIComponent(route.id)}`;

/** A call's failure: UNAUTHENTICATED asks for a key (the app listens), anything else is shown. */
const needKeyListeners = new Set<() => void>();
function failed(error: unknown): string {
  if (isUnauthenticated(error)) for (const listener of needKeyListeners) listener();
  return describeError(error);
}

function App() {
  const [route, setRoute] = useState(routeOf(window.location.hash));
  const [askKey, setAskKey] = useState(false);
  useEffect(() => {
    const onHash = () => setRoute(routeOf(window.location.hash));
    window.addEventListener("hashchange", onHash);
    // The hash may have changed between the first render and this listener.
    onHash();
    const onNeedKey = () => setAskKey(true);
    needKeyListeners.add(onNeedKey);
    return () => {
      window.removeEventListener("hashchange", onHash);
      needKeyListeners.delete(onNeedKey);
    };
  }, []);
  return html`
    <header>
      <a class="brand" href="#/">Tollgate</a>
      <a class="nav" href="#/plans">Plans</a>
      <a class="nav" href="#/workers">Workers</a>
      <${Lookup} />
      <${KeyControl} ask=${askKey} onDone=${() => setAskKey(false)} />
    </header>
    <main>
      ${route.page === "queues" && html`<${QueuesPage} />`}
      ${route.page === "plans" && html`<${PlansPage} />`}
      ${route.page === "workers" && html`<${WorkersPage} />`}
      ${route.page === "user" && html`<${UserPage} key=${route.id} userId=${route.id} />`}
      ${route.page === "task" && html`<${TaskPage} key=${route.id} taskId=${route.id} />`}
    </main>
  `;
}

function Lookup() {
  const [text, setText] = useState("");
  const go = (event: Event) => {
    event.preventDefault();
    const value = text.trim();
    if (value === "") return;
    // Task ids are "<partition>.<22 characters>"; anything else is a user id.
    window.location.hash = /^\d+\.[A-Za-z0-9_-]{22}$/.test(value)
      ? link({ page: "task", id: value })
      : link({ page: "user", id: value });
  };
  return html`
    <form class="lookup" onSubmit=${go}>
      <input name="lookup" placeholder="user id or task id" value=${text} onInput=${(e: Event) => setText((e.target as HTMLInputElement).value)} />
      <button type="submit">Open</button>
    </form>
  `;
}

function forgetKey(): void {
  setApiKey("");
  window.location.reload();
}

function KeyControl({ ask, onDone }: { ask: boolean; onDone: () => void }) {
  const [editing, setEditing] = useState(false);
  const [text, setText] = useState("");
  const open = ask || editing;
  const save = (event: Event) => {
    event.preventDefault();
    setApiKey(text.trim());
    setEditing(false);
    onDone();
    window.location.reload();
  };
  if (!open) {
    return html`<button class="key" onClick=${() => setEditing(true)}>${apiKey() ? "API key set" : "API key"}</button>`;
  }
  return html`
    <form class="key-form" onSubmit=${save}>
      <span>${ask ? "This server needs an API key:" : "API key:"}</span>
      <input name="api-key" type="password" autocomplete="off" value=${text} onInput=${(e: Event) => setText((e.target as HTMLInputElement).value)} />
      <button type="submit">Use key</button>
      ${apiKey() && html`<button type="button" onClick=${forgetKey}>Forget key</button>`}
    </form>
  `;
}

function Bar({ done, total }: { done: number; total: number }) {
  const percent = total > 0 ? Math.min(100, (100 * done) / total) : 100;
  return html`<div class="bar" role="progressbar" aria-valuenow=${Math.round(percent)}><div style=${{ width: `${percent}%` }}></div></div>`;
}

function QueuesPage() {
  const [queues, setQueues] = useState<readonly QueueSummary[] | undefined>(undefined);
  const [message, setMessage] = useState("");
  useEffect(() => {
    let stopped = false;
    let timer: number | undefined;
    const load = async () => {
      try {
        const page = await tasks.listQueues({ pageSize: 100 });
        if (stopped) return;
        setQueues(page.queues);
        setMessage("");
      } catch (error) {
        if (stopped) return;
        setMessage(
          isPermissionDenied(error)
            ? "This key acts for one user: open its queue by its user id above."
            : failed(error),
        );
        setQueues(undefined);
        if (isPermissionDenied(error) || isUnauthenticated(error)) return;
      }
      timer = window.setTimeout(load, QUEUES_REFRESH_MS);
    };
    void load();
    return () => {
      stopped = true;
      window.clearTimeout(timer);
    };
  }, []);
  return html`
    <section>
      <h1>Queues</h1>
      ${message && html`<p class="message">${message}</p>`}
      ${
        queues &&
        (queues.length === 0
          ? html`<p class="empty">Nothing queued, running or dead.</p>`
          : html`
            <table class="queues">
              <thead><tr><th>user</th><th>queued</th><th>running</th><th>retrying</th><th>dead</th><th>draining</th><th>drained</th><th></th></tr></thead>
              <tbody>
                ${queues.map(
                  (queue) => html`
                    <tr data-user=${queue.userId}>
                      <td><a href=${link({ page: "user", id: queue.userId })}>${queue.userId}</a></td>
                      <td class="queued">${count(queue.queued)}</td>
                      <td>${count(queue.running)}</td>
                      <td>${count(queue.waitingToRetry)}</td>
                      <td class=${queue.dead > 0n ? "dead" : ""}>${count(queue.dead)}</td>
                      <${Draining} key=${queue.userId} queue=${queue} />
                      <td>${queue.paused ? html`<span class="badge paused">paused</span>` : ""}</td>
                    </tr>
                  `,
                )}
              </tbody>
            </table>
          `)
      }
    </section>
    <${Chart} />
  `;
}

/**
 * A listed queue's bar (what left it since the page opened, of the most it
 * held) and when it drains, from the policy (WatchQueue's estimate). One
 * short WatchQueue call per queue and refresh, not a stream each: a browser
 * holds few connections to one host.
 */
function Draining({ queue }: { queue: QueueSummary }) {
  const [drain, setDrain] = useState<WatchQueueResponse | undefined>(undefined);
  const most = useRef(0);
  const waiting = Number(queue.queued + queue.running + queue.waitingToRetry);
  most.current = Math.max(most.current, waiting);
  useEffect(() => {
    const abort = new AbortController();
    void (async () => {
      try {
        for await (const message of tasks.watchQueue({ userId: queue.userId }, { signal: abort.signal })) {
          setDrain(message);
          break;
        }
      } catch {
        // The row shows what ListQueues said; the next refresh tries again.
      } finally {
        abort.abort();
      }
    })();
    return () => abort.abort();
  }, [queue.userId, waiting]);
  return html`
    <td class="draining"><${Bar} done=${most.current - waiting} total=${most.current} /></td>
    <td class="eta">${queue.paused ? "paused" : waiting === 0 ? "drained" : fromNow(drain?.estimatedDrain)}</td>
  `;
}

/** A queue's live counts: WatchQueue, kept open and restarted when it ends. */
function useWatch(userId: string): {
  snapshot: WatchQueueResponse | undefined;
  first: WatchQueueResponse | undefined;
  error: string;
} {
  const [snapshot, setSnapshot] = useState<WatchQueueResponse | undefined>(undefined);
  const [first, setFirst] = useState<WatchQueueResponse | undefined>(undefined);
  const [error, setError] = useState("");
  useEffect(() => {
    const abort = new AbortController();
    let retry: number | undefined;
    const watch = async () => {
      try {
        for await (const message of tasks.watchQueue({ userId, follow: true }, { signal: abort.signal })) {
          setFirst((before) => before ?? message);
          setSnapshot(message);
          setError("");
        }
      } catch (caught) {
        if (abort.signal.aborted) return;
        setError(failed(caught));
        if (isPermissionDenied(caught) || isUnauthenticated(caught)) return;
      }
      if (!abort.signal.aborted) retry = window.setTimeout(watch, 1_000);
    };
    void watch();
    return () => {
      abort.abort();
      window.clearTimeout(retry);
    };
  }, [userId]);
  return { snapshot, first, error };
}

function UserPage({ userId }: { userId: string }) {
  const { snapshot, first, error } = useWatch(userId);
  const [queued, setQueued] = useState<readonly Task[]>([]);
  const [running, setRunning] = useState<readonly Task[]>([]);
  const [dead, setDead] = useState<readonly Task[]>([]);
  const [notice, setNotice] = useState("");
  // Refreshes overlap: only the latest one's answer is shown, never an older one landing late.
  const latest = useRef(0);
  const refresh = useCallback(async () => {
    const mine = ++latest.current;
    try {
      const [q, r, d] = await Promise.all([
        tasks.listTasks({ userId, state: ListState.QUEUED, pageSize: 50 }),
        tasks.listTasks({ userId, state: ListState.RUNNING, pageSize: 50 }),
        tasks.listTasks({ userId, state: ListState.DEAD, pageSize: 50 }),
      ]);
      if (mine !== latest.current) return;
      setQueued(q.tasks);
      setRunning(r.tasks);
      setDead(d.tasks);
    } catch (caught) {
      setNotice(failed(caught));
    }
  }, [userId]);
  // The lists follow the counts: refreshed whenever WatchQueue says something
  // changed, and every few seconds besides (a dead letter dropped at its
  // retention changes no count).
  useEffect(() => {
    void refresh();
  }, [refresh, snapshot]);
  useEffect(() => {
    const timer = window.setInterval(refresh, LISTS_REFRESH_MS);
    return () => window.clearInterval(timer);
  }, [refresh]);
  const act = async (what: string, call: () => Promise<unknown>) => {
    try {
      await call();
      setNotice(what);
    } catch (caught) {
      setNotice(failed(caught));
    }
    void refresh();
  };
  const done = snapshot && first ? Number(snapshot.completed - first.completed) : 0;
  const remaining = snapshot ? Number(snapshot.queued + snapshot.running) : 0;
  return html`
    <section class="user" data-user=${userId}>
      <h1>Queue of <code>${userId}</code> ${snapshot?.paused ? html`<span class="badge paused">paused</span>` : ""}</h1>
      ${error && html`<p class="message">${error}</p>`}
      ${
        snapshot &&
        html`
        <div class="counts">
          <span>queued <b class="queued">${count(snapshot.queued)}</b></span>
          <span>running <b class="running">${count(snapshot.running)}</b></span>
          <span>done <b class="done">${count(done)}</b></span>
          <span>next start <b>${snapshot.paused ? "paused" : fromNow(snapshot.nextStart)}</b></span>
          <span>drained <b class="eta">${snapshot.drained ? "drained" : snapshot.paused ? "paused" : fromNow(snapshot.estimatedDrain)}</b></span>
        </div>
        <${Bar} done=${done} total=${done + remaining} />
        <p class="since">
          ${
            `Since this page opened: ${count(done)} done, ${count(snapshot.failed - (first?.failed ?? 0n))} failed attempts, ` +
            `${count(snapshot.deadLettered - (first?.deadLettered ?? 0n))} dead-lettered, ${count(snapshot.cancelled - (first?.cancelled ?? 0n))} cancelled.`
          }
        </p>
        <div class="actions">
          ${
            snapshot.paused
              ? html`<button name="resume" onClick=${() => act("resumed", () => tasks.resumeQueue({ userId }))}>Resume</button>`
              : html`<button name="pause" onClick=${() => act("paused", () => tasks.pauseQueue({ userId }))}>Pause</button>`
          }
          <button name="purge" onClick=${() => confirm(`Cancel every queued task of ${userId}?`) && act("purged", () => tasks.purgeQueue({ userId }))}>Purge queued</button>
        </div>
      `
      }
      ${notice && html`<p class="notice">${notice}</p>`}
      <h2>Policy</h2>
      <${UserPolicyPanel} userId=${userId} />
      <h2>Running (${running.length})</h2>
      <${TaskTable} rows=${running} />
      <h2>Queued, in order${snapshot && Number(snapshot.queued) > queued.length ? ` (first ${queued.length})` : ""}</h2>
      <${TaskTable} rows=${queued} positions=${true} name="queued-tasks" />
      <h2>Dead letters (${dead.length})</h2>
      ${
        dead.length > 0 &&
        html`<div class="actions">
        <button name="requeue-all" onClick=${() => act("requeued", () => tasks.requeueDeadLetters({ userId }))}>Requeue all</button>
        <button name="purge-dead" onClick=${() => confirm("Delete every dead letter?") && act("dead letters purged", () => tasks.purgeDeadLetters({ userId }))}>Purge all</button>
      </div>`
      }
      <${TaskTable}
        rows=${dead}
        errors=${true}
        action=${(task: Task) => html`<button name="requeue" onClick=${() => act(`requeued ${task.taskId}`, () => tasks.requeueDeadLetters({ userId, taskIds: [task.taskId] }))}>Requeue</button>`}
      />
    </section>
  `;
}

function TaskTable({
  rows,
  positions = false,
  errors = false,
  action,
  name = "",
}: {
  rows: readonly Task[];
  name?: string;
  positions?: boolean;
  errors?: boolean;
  action?: (task: Task) => unknown;
}) {
  if (rows.length === 0) return html`<p class="empty">none</p>`;
  return html`
    <table class=${`tasks ${name}`}>
      <tbody>
        ${rows.map(
          (task) => html`
            <tr data-task=${task.taskId}>
              ${positions && html`<td>${task.queuePosition}</td>`}
              <td><a href=${link({ page: "task", id: task.taskId })}><code>${task.taskId}</code></a></td>
              <td>${task.kind || "default"}</td>
              <td>${task.priority > 0 ? `priority ${task.priority}` : ""}</td>
              <td>attempts ${task.attempts}</td>
              ${errors && html`<td class="error">${task.lastError}</td>`}
              ${action && html`<td>${action(task)}</td>`}
            </tr>
          `,
        )}
      </tbody>
    </table>
  `;
}

function TaskPage({ taskId }: { taskId: string }) {
  const [task, setTask] = useState<Task | undefined>(undefined);
  const [message, setMessage] = useState("");
  const load = useCallback(async () => {
    try {
      setTask((await tasks.getTask({ taskId })).task);
      setMessage("");
    } catch (error) {
      setMessage(failed(error));
    }
  }, [taskId]);
  useEffect(() => {
    void load();
    const timer = window.setInterval(load, 2_000);
    return () => window.clearInterval(timer);
  }, [load]);
  const cancel = async () => {
    try {
      await tasks.cancelTask({ taskId });
    } catch (error) {
      setMessage(failed(error));
    }
    void load();
  };
  return html`
    <section class="task">
      <h1>Task <code>${taskId}</code></h1>
      ${message && html`<p class="message">${message}</p>`}
      ${
        task &&
        html`
        <dl>
          <dt>state</dt><dd class="state">${TaskState[task.state]}</dd>
          <dt>user</dt><dd><a href=${link({ page: "user", id: task.userId })}>${task.userId}</a></dd>
          <dt>kind</dt><dd>${task.kind || "default"}</dd>
          <dt>priority</dt><dd>${task.priority}</dd>
          <dt>attempts</dt><dd>${task.attempts} (${task.attemptsLeft} left)</dd>
          <dt>submitted</dt><dd>${time(task.submittedAt)}</dd>
          <dt>started</dt><dd>${time(task.startedAt)}</dd>
          <dt>finished</dt><dd>${time(task.finishedAt)}</dd>
          ${task.notBefore && html`<dt>not before</dt><dd>${time(task.notBefore)}</dd>`}
          ${task.startBy && html`<dt>start by</dt><dd>${time(task.startBy)}</dd>`}
          ${task.lastError && html`<dt>last error</dt><dd class="error">${task.lastError}</dd>`}
        </dl>
        ${
          (task.state === TaskState.QUEUED || task.state === TaskState.RUNNING || task.state === TaskState.FAILED) &&
          html`<button name="cancel" onClick=${cancel}>Cancel</button>`
        }
      `
      }
    </section>
  `;
}

function Chart() {
  const element = useRef<HTMLDivElement>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    const points: MetricsPoint[] = [];
    const data = (): uPlot.AlignedData => [
      points.map((point) => point.at),
      points.map((point) => point.startsPerSecond),
      points.map((point) => point.latenessMeanMs),
      points.map((point) => point.latenessP99Ms),
    ];
    const plot = new uPlot(
      {
        width: Math.min(900, (element.current?.clientWidth ?? 900) - 8),
        height: 220,
        scales: { x: { time: true }, starts: { auto: true }, ms: { auto: true } },
        series: [
          {},
          { label: "starts/s", scale: "starts", stroke: "#2f6fde", width: 2 },
          { label: "lateness mean (ms)", scale: "ms", stroke: "#d97706", width: 1 },
          { label: "lateness p99 (ms)", scale: "ms", stroke: "#dc2626", width: 1, dash: [4, 4] },
        ],
        axes: [
          {},
          { scale: "starts", label: "starts/s" },
          { scale: "ms", side: 1, label: "ms", grid: { show: false } },
        ],
      },
      data(),
      element.current!,
    );
    let last: MetricsSample | undefined;
    const sample = async () => {
      try {
        const response = await fetch("/metrics", { cache: "no-store" });
        if (!response.ok) throw new Error(`/metrics answered ${response.status}`);
        const now = parseMetrics(await response.text(), Date.now());
        if (last) {
          points.push(pointBetween(last, now));
          if (points.length > CHART_POINTS) points.shift();
          plot.setData(data());
        }
        last = now;
        setError("");
      } catch (caught) {
        setError((caught as Error).message);
      }
    };
    void sample();
    const timer = window.setInterval(sample, METRICS_REFRESH_MS);
    return () => {
      window.clearInterval(timer);
      plot.destroy();
    };
  }, []);
  return html`
    <section>
      <h2>Starts per second and start lateness, last 5 minutes</h2>
      ${error && html`<p class="message">${error}</p>`}
      <div class="chart" ref=${element}></div>
    </section>
  `;
}

render(html`<${App} />`, document.getElementById("app")!);
