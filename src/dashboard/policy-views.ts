// Plans and users' policies (PolicyService, admin keys only): a user's
// effective policy with a form to change it (a dry run first shows when its
// queue would drain), and the plans page with the global limit.
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { html } from "htm/preact";
import { useCallback, useEffect, useState } from "preact/hooks";
import type { GetUserPolicyResponse, DrainForecast, Plan } from "../../gen/ts/tollgate/v1/policy_service_pb.js";
import { PolicySource } from "../../gen/ts/tollgate/v1/policy_service_pb.js";
import { describeError, isPermissionDenied, policies } from "./api.js";
import { time } from "./format.js";

const SOURCES: Readonly<Record<number, string>> = {
  [PolicySource.OVERRIDE]: "its own override",
  [PolicySource.PLAN]: "its plan",
  [PolicySource.DEFAULT]: "the default plan",
};

const inputValue = (event: Event): string => (event.target as HTMLInputElement).value;

function describeForecast(forecast: DrainForecast): string {
  if (forecast.queued === 0) return "Nothing is queued: the change binds the next start.";
  const now = forecast.lastStartNow ? timestampMs(forecast.lastStartNow) : undefined;
  const proposed = forecast.lastStartProposed ? timestampMs(forecast.lastStartProposed) : undefined;
  const seconds = (at: number | undefined) =>
    at === undefined ? "—" : `${Math.max(0, Math.round((at - Date.now()) / 1000))} s`;
  return `${forecast.queued} queued: the last would start in ${seconds(now)} now, in ${seconds(proposed)} under the proposed policy (${time(forecast.lastStartProposed)}).`;
}

export function UserPolicyPanel({ userId }: { userId: string }) {
  const [policy, setPolicy] = useState<GetUserPolicyResponse | undefined>(undefined);
  const [message, setMessage] = useState("");
  const [limits, setLimits] = useState("");
  const [maxRunning, setMaxRunning] = useState("0");
  const [plan, setPlan] = useState("");
  const [forecast, setForecast] = useState("");
  const load = useCallback(async () => {
    try {
      const answer = await policies.getUserPolicy({ userId });
      setPolicy(answer);
      setMessage("");
    } catch (error) {
      setMessage(isPermissionDenied(error) ? "Policies are for admin keys." : describeError(error));
    }
  }, [userId]);
  useEffect(() => {
    void load();
  }, [load]);
  const proposal = () =>
    plan.trim() !== ""
      ? { userId, assignment: { case: "plan" as const, value: plan.trim() } }
      : {
          userId,
          assignment: {
            case: "override" as const,
            value: { limits: limits.trim(), maxRunning: Number(maxRunning) || 0 },
          },
        };
  const preview = async (event: Event) => {
    event.preventDefault();
    try {
      const answer = await policies.setUserPolicy({ ...proposal(), dryRun: true });
      setForecast(answer.forecast ? describeForecast(answer.forecast) : "");
    } catch (error) {
      setForecast(describeError(error));
    }
  };
  const apply = async () => {
    try {
      await policies.setUserPolicy(proposal());
      setForecast("applied");
    } catch (error) {
      setForecast(describeError(error));
    }
    void load();
  };
  const remove = async () => {
    try {
      await policies.deleteUserPolicy({ userId });
      setForecast("the user is back on the default plan");
    } catch (error) {
      setForecast(describeError(error));
    }
    void load();
  };
  if (message) return html`<p class="empty">${message}</p>`;
  if (!policy) return null;
  return html`
    <div class="policy">
      <p>
        Effective policy <b class="effective">${policy.effective?.limits}</b>
        ${policy.effective && policy.effective.maxRunning > 0 ? `, at most ${policy.effective.maxRunning} running` : ""}
        — from ${SOURCES[policy.source] ?? "?"}${policy.plan ? ` "${policy.plan}"` : ""}.
      </p>
      <form class="policy-form" onSubmit=${preview}>
        <label>limits <input name="limits" placeholder="5/1s,100/1m" value=${limits} onInput=${(e: Event) => setLimits(inputValue(e))} /></label>
        <label>max running <input name="max-running" size="4" value=${maxRunning} onInput=${(e: Event) => setMaxRunning(inputValue(e))} /></label>
        <label>or plan <input name="plan" size="10" value=${plan} onInput=${(e: Event) => setPlan(inputValue(e))} /></label>
        <button type="submit" name="preview">Preview</button>
        <button type="button" name="apply" onClick=${apply}>Apply</button>
        ${policy.assignment && html`<button type="button" name="remove-policy" onClick=${remove}>Remove</button>`}
      </form>
      ${forecast && html`<p class="notice forecast">${forecast}</p>`}
    </div>
  `;
}

export function PlansPage() {
  const [plans, setPlans] = useState<readonly Plan[]>([]);
  const [global, setGlobal] = useState("");
  const [message, setMessage] = useState("");
  const [name, setName] = useState("");
  const [limits, setLimits] = useState("");
  const [maxRunning, setMaxRunning] = useState("0");
  const load = useCallback(async () => {
    try {
      const [list, limitsNow] = await Promise.all([
        policies.listPlans({ pageSize: 100 }),
        policies.getGlobalLimits({}),
      ]);
      setPlans(list.plans);
      setGlobal(limitsNow.globalLimits?.limits ?? "");
      setMessage("");
    } catch (error) {
      setMessage(isPermissionDenied(error) ? "Plans are for admin keys." : describeError(error));
    }
  }, []);
  useEffect(() => {
    void load();
  }, [load]);
  const run = async (call: () => Promise<unknown>) => {
    try {
      await call();
      setMessage("");
    } catch (error) {
      setMessage(describeError(error));
    }
    void load();
  };
  const save = (event: Event) => {
    event.preventDefault();
    void run(() =>
      policies.setPlan({ name: name.trim(), policy: { limits: limits.trim(), maxRunning: Number(maxRunning) || 0 } }),
    );
  };
  return html`
    <section>
      <h1>Plans</h1>
      ${message && html`<p class="message">${message}</p>`}
      <table class="plans">
        <thead><tr><th>plan</th><th>limits</th><th>max running</th><th></th></tr></thead>
        <tbody>
          ${plans.map(
            (item) => html`
              <tr data-plan=${item.name}>
                <td>${item.name}${item.fromConfig ? " (from TOLLGATE_RATE_LIMITS)" : ""}</td>
                <td>${item.policy?.limits}</td>
                <td>${item.policy && item.policy.maxRunning > 0 ? item.policy.maxRunning : "—"}</td>
                <td>${!item.fromConfig && html`<button name="delete-plan" onClick=${() => run(() => policies.deletePlan({ name: item.name }))}>Delete</button>`}</td>
              </tr>
            `,
          )}
        </tbody>
      </table>
      <form class="plan-form" onSubmit=${save}>
        <label>plan <input name="plan-name" size="10" value=${name} onInput=${(e: Event) => setName(inputValue(e))} /></label>
        <label>limits <input name="plan-limits" placeholder="10/1s,1000/1m" value=${limits} onInput=${(e: Event) => setLimits(inputValue(e))} /></label>
        <label>max running <input name="plan-max-running" size="4" value=${maxRunning} onInput=${(e: Event) => setMaxRunning(inputValue(e))} /></label>
        <button type="submit" name="save-plan">Save plan</button>
      </form>
      <h2>Global limit</h2>
      <p>${global ? html`All users together: <b>${global}</b>` : "None: only each user's own policy binds."}</p>
    </section>
  `;
}
