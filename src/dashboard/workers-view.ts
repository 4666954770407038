// The workers page: every worker connected to any host over WorkerService
// (ListWorkers, worker and admin keys), with its kinds, how many tasks it
// asked for at once and how many it runs now. Refreshed every 2 s.
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import type { WorkerInfo } from "../../gen/ts/tollgate/v1/worker_service_pb.js";
import { describeError, isPermissionDenied, workers } from "./api.js";
import { time } from "./format.js";

const REFRESH_MS = 2_000;

export function WorkersPage() {
  const [list, setList] = useState<readonly WorkerInfo[] | undefined>(undefined);
  const [message, setMessage] = useState("");
  useEffect(() => {
    let stopped = false;
    const load = async () => {
      try {
        const answer = await workers.listWorkers({});
        if (!stopped) {
          setList(answer.workers);
          setMessage("");
        }
      } catch (error) {
        if (!stopped)
          setMessage(isPermissionDenied(error) ? "Workers are for admin and worker keys." : describeError(error));
      }
    };
    void load();
    const timer = setInterval(() => void load(), REFRESH_MS);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, []);
  const slots = (list ?? []).reduce((sum, worker) => sum + worker.concurrency, 0);
  const busy = (list ?? []).reduce((sum, worker) => sum + worker.inFlight, 0);
  return html`
    <section>
      <h1>Workers</h1>
      ${message && html`<p class="error">${message}</p>`}
      ${
        list &&
        html`<p id="workers-summary">${list.length} connected, running ${busy} of ${slots} tasks at once.</p>
        <table id="workers">
          <thead>
            <tr>
              <th>Name</th>
              <th>Kinds</th>
              <th>In flight</th>
              <th>Server</th>
              <th>Connected</th>
            </tr>
          </thead>
          <tbody>
            ${list.map(
              (worker) => html`<tr data-worker=${worker.workerId}>
                <td title=${worker.workerId}>${worker.name || worker.workerId}</td>
                <td>${worker.kinds.join(", ")}</td>
                <td>${worker.inFlight} / ${worker.concurrency}</td>
                <td>${worker.server}</td>
                <td>${time(worker.connectedAt)}</td>
              </tr>`,
            )}
          </tbody>
        </table>`
      }
    </section>
  `;
}
