import { toJson } from "@bufbuild/protobuf";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { createPolicyClient } from "../client/client.js";
import { CONNECTION_HELP, UsageError, connection, help, parse, requireUser } from "./commands.js";
import {
  GetUserPolicyResponseSchema,
  PlanSchema,
  PolicySource,
  SetUserPolicyResponseSchema,
  type Plan,
  type Policy,
} from "../../gen/ts/tollgate/v1/policy_service_pb.js";

// The PolicyService commands (admin keys): `tollgate plan …` and
// `tollgate policy …`. A table (or one line) by default, --json for scripts.

const PLAN_HELP = `Usage: tollgate plan set NAME --limits 10/1s,1000/1m [--max-running N] [flags]
       tollgate plan list [flags]
       tollgate plan get NAME [flags]
       tollgate plan delete NAME [flags]

Named rate plans (PolicyService; admin keys only). Users are assigned a plan
with "tollgate policy set --user ID --plan NAME"; everyone else gets the plan
"default" (TOLLGATE_RATE_LIMITS until one is set). A change binds each
user's next start on every server at once.
  --limits WINDOWS    windows, limit/duration each: 10/1s,1000/1m (units s, m, h, d)
  --max-running N     tasks of one user running at once, across servers (0: no cap)

${CONNECTION_HELP}`;

const POLICY_HELP = `Usage: tollgate policy set --user ID (--plan NAME | --limits WINDOWS [--max-running N]) [--dry-run] [flags]
       tollgate policy get --user ID [flags]
       tollgate policy delete --user ID [flags]
       tollgate policy list [flags]

A user's policy (PolicyService; admin keys only): a plan, or limits of its
own (an override). get prints the user's effective policy and where it comes
from (override, plan, or the default plan). delete gives the user the default
plan again. A change binds the user's next start on every server at once.
  --user ID           the user (required, except for list)
  --plan NAME         assign this plan
  --limits WINDOWS    an override: windows, limit/duration each: 5/1s,100/1m
  --max-running N     with --limits: tasks running at once, across servers
  --dry-run           change nothing: print when the user's last queued task
                      would start now and under the proposed policy

${CONNECTION_HELP}`;

function maxRunningOf(text: string | undefined): number {
  const value = Number(text ?? "0");
  if (!Number.isSafeInteger(value) || value < 0) throw new UsageError("--max-running must be a whole number from 0");
  return value;
}

function describePolicy(policy: Policy | undefined): string {
  if (!policy) return "-";
  return policy.maxRunning > 0 ? `${policy.limits}, max running ${policy.maxRunning}` : policy.limits;
}

/** A header and rows, columns aligned. */
function table(rows: readonly (readonly string[])[]): string[] {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows.map((row) =>
    row
      .map((cell, column) => cell.padEnd(widths[column]!))
      .join("  ")
      .trimEnd(),
  );
}

function planRow(plan: Plan): string[] {
  return [
    plan.name,
    plan.policy?.limits ?? "-",
    plan.policy && plan.policy.maxRunning > 0 ? String(plan.policy.maxRunning) : "-",
    plan.fromConfig ? "TOLLGATE_RATE_LIMITS" : "stored",
  ];
}

export async function planCommand(args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(args, { limits: { type: "string" }, "max-running": { type: "string" } }, true);
  if (values.help) return help(PLAN_HELP);
  const [action, name, ...rest] = positionals;
  if (rest.length > 0) throw new UsageError(`unexpected ${rest.join(" ")}`);
  const client = createPolicyClient(connection(values));
  const print = (plans: readonly Plan[]): void => {
    if (values.json) for (const plan of plans) console.log(JSON.stringify(toJson(PlanSchema, plan)));
    else
      for (const line of table([["PLAN", "LIMITS", "MAX RUNNING", "FROM"], ...plans.map(planRow)])) console.log(line);
  };
  switch (action) {
    case "set": {
      if (!name) throw new UsageError("give the plan's name: plan set NAME --limits ...");
      if (values.limits === undefined) throw new UsageError("--limits is required");
      const { plan } = await client.setPlan({
        name,
        policy: { limits: values.limits, maxRunning: maxRunningOf(values["max-running"]) },
      });
      print(plan ? [plan] : []);
      return 0;
    }
    case "get": {
      if (!name) throw new UsageError("give the plan's name: plan get NAME");
      const { plan } = await client.getPlan({ name });
      print(plan ? [plan] : []);
      return 0;
    }
    case "delete": {
      if (!name) throw new UsageError("give the plan's name: plan delete NAME");
      const { deleted } = await client.deletePlan({ name });
      console.log(values.json ? JSON.stringify({ name, deleted }) : deleted ? `deleted ${name}` : `no plan ${name}`);
      return 0;
    }
    case "list": {
      if (name) throw new UsageError(`unexpected ${name}`);
      const plans: Plan[] = [];
      let pageToken = "";
      do {
        const page = await client.listPlans({ pageSize: 500, pageToken });
        plans.push(...page.plans);
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      print(plans);
      return 0;
    }
    default:
      throw new UsageError("give one action: set, list, get or delete");
  }
}

const SOURCE_NAMES: Readonly<Record<PolicySource, string>> = {
  [PolicySource.UNSPECIFIED]: "unknown",
  [PolicySource.OVERRIDE]: "override",
  [PolicySource.PLAN]: "plan",
  [PolicySource.DEFAULT]: "default",
};

export async function policyCommand(args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      user: { type: "string" },
      plan: { type: "string" },
      limits: { type: "string" },
      "max-running": { type: "string" },
      "dry-run": { type: "boolean" },
    },
    true,
  );
  if (values.help) return help(POLICY_HELP);
  const [action, ...rest] = positionals;
  if (rest.length > 0) throw new UsageError(`unexpected ${rest.join(" ")}`);
  const client = createPolicyClient(connection(values));
  switch (action) {
    case "set": {
      const userId = requireUser(values);
      if ((values.plan === undefined) === (values.limits === undefined))
        throw new UsageError("give --plan NAME or --limits WINDOWS, one of them");
      if (values.plan !== undefined && values["max-running"] !== undefined)
        throw new UsageError("--max-running goes with --limits (a plan has its own)");
      const answer = await client.setUserPolicy({
        userId,
        assignment:
          values.plan !== undefined
            ? { case: "plan", value: values.plan }
            : {
                case: "override",
                value: { limits: values.limits ?? "", maxRunning: maxRunningOf(values["max-running"]) },
              },
        dryRun: values["dry-run"] === true,
      });
      if (values.json) {
        console.log(JSON.stringify(toJson(SetUserPolicyResponseSchema, answer)));
        return 0;
      }
      const given = values.plan !== undefined ? `plan ${values.plan}` : `limits ${values.limits}`;
      if (!answer.dryRun) {
        console.log(`${userId}: ${given}`);
        return 0;
      }
      const forecast = answer.forecast;
      const when = (at: Timestamp | undefined) => (at ? timestampDate(at).toISOString() : "-");
      console.log(`dry run, nothing changed: ${userId} has ${forecast?.queued ?? 0} queued`);
      for (const line of table([
        ["", "POLICY", "LAST QUEUED TASK STARTS"],
        ["now", describePolicy(forecast?.current), when(forecast?.lastStartNow)],
        ["proposed", describePolicy(forecast?.proposed), when(forecast?.lastStartProposed)],
      ]))
        console.log(line);
      return 0;
    }
    case "get": {
      const userId = requireUser(values);
      const answer = await client.getUserPolicy({ userId });
      if (values.json) {
        console.log(JSON.stringify(toJson(GetUserPolicyResponseSchema, answer)));
        return 0;
      }
      const source = SOURCE_NAMES[answer.source];
      const from =
        answer.source === PolicySource.OVERRIDE
          ? "its own override"
          : answer.source === PolicySource.PLAN
            ? `plan ${answer.plan}`
            : answer.assignment?.assignment.case === "plan"
              ? `plan ${answer.plan} (assigned plan ${answer.assignment.assignment.value} does not exist)`
              : `plan ${answer.plan}`;
      for (const line of table([
        ["USER", "POLICY", "SOURCE", "FROM"],
        [userId, describePolicy(answer.effective), source, from],
      ]))
        console.log(line);
      return 0;
    }
    case "delete": {
      const userId = requireUser(values);
      const { deleted } = await client.deleteUserPolicy({ userId });
      console.log(
        values.json
          ? JSON.stringify({ userId, deleted })
          : deleted
            ? `${userId}: back to the default plan`
            : `${userId} had no policy of its own`,
      );
      return 0;
    }
    case "list": {
      const rows: string[][] = [];
      let pageToken = "";
      do {
        const page = await client.listUserPolicies({ pageSize: 500, pageToken });
        for (const entry of page.userPolicies) {
          const { assignment } = entry;
          if (values.json) {
            console.log(
              JSON.stringify({
                userId: entry.userId,
                ...(assignment.case === "plan" ? { plan: assignment.value } : {}),
                ...(assignment.case === "override"
                  ? { limits: assignment.value.limits, maxRunning: assignment.value.maxRunning }
                  : {}),
              }),
            );
          }
          rows.push([
            entry.userId,
            assignment.case === "plan" ? `plan ${assignment.value}` : `override ${describePolicy(assignment.value)}`,
          ]);
        }
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      if (!values.json) for (const line of table([["USER", "POLICY"], ...rows])) console.log(line);
      return 0;
    }
    default:
      throw new UsageError("give one action: set, get, delete or list");
  }
}
