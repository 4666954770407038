import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { sendUnaryData, ServerUnaryCall, UntypedServiceImplementation } from "@grpc/grpc-js";
import type { Logger } from "../logger.js";
import { callContextOf } from "./call-context.js";
import { reportFailure } from "./status.js";
import { formatRatePolicy } from "../core/rate-policy.js";
import type { NamedPlan, PolicyAssignment, PolicyStore } from "../core/policy-store.js";
import {
  deleteGlobalLimits,
  deletePlan,
  deleteUserPolicy,
  forecastUserPolicy,
  getGlobalLimits,
  getPlan,
  getUserPolicy,
  listPlans,
  listUserPolicies,
  setGlobalLimits,
  setPlan,
  setUserPolicy,
  type AssignmentInput,
  type PolicyRules,
} from "../core/policies.js";
import type { UserPolicy as CorePolicy } from "../core/user-policy.js";
import {
  DeleteGlobalLimitsResponseSchema,
  DeletePlanResponseSchema,
  DeleteUserPolicyResponseSchema,
  DrainForecastSchema,
  GetGlobalLimitsResponseSchema,
  GetPlanResponseSchema,
  GetUserPolicyResponseSchema,
  ListPlansResponseSchema,
  ListUserPoliciesResponseSchema,
  PlanSchema,
  PolicySchema,
  PolicySource,
  SetGlobalLimitsResponseSchema,
  SetPlanResponseSchema,
  SetUserPolicyResponseSchema,
  UserPolicySchema,
  type DeleteGlobalLimitsRequest,
  type DeleteGlobalLimitsResponse,
  type DeletePlanRequest,
  type DeletePlanResponse,
  type DeleteUserPolicyRequest,
  type DeleteUserPolicyResponse,
  type GetGlobalLimitsRequest,
  type GetGlobalLimitsResponse,
  type GetPlanRequest,
  type GetPlanResponse,
  type GetUserPolicyRequest,
  type GetUserPolicyResponse,
  type ListPlansRequest,
  type ListPlansResponse,
  type ListUserPoliciesRequest,
  type ListUserPoliciesResponse,
  type Policy,
  type SetGlobalLimitsRequest,
  type SetGlobalLimitsResponse,
  type SetPlanRequest,
  type SetPlanResponse,
  type SetUserPolicyRequest,
  type SetUserPolicyResponse,
  type UserPolicy,
} from "../../gen/ts/tollgate/v1/policy_service_pb.js";

export interface PolicyServiceOptions {
  readonly store: PolicyStore;
  readonly logger: Logger;
}

/** PolicyService's handlers: the interceptor has identified the caller; the core's rules check and authorize. */
export function policyServiceImplementation(options: PolicyServiceOptions): UntypedServiceImplementation {
  const rules: PolicyRules = { store: options.store, logger: options.logger };
  const { logger } = options;
  return {
    setPlan: unary<SetPlanRequest, SetPlanResponse>(logger, async (call) => {
      const { name, policy } = call.request;
      const plan = await setPlan(rules, callerOf(call), name, policy);
      return create(SetPlanResponseSchema, { plan: planMessage(plan) });
    }),
    getPlan: unary<GetPlanRequest, GetPlanResponse>(logger, async (call) =>
      create(GetPlanResponseSchema, { plan: planMessage(await getPlan(rules, callerOf(call), call.request.name)) }),
    ),
    deletePlan: unary<DeletePlanRequest, DeletePlanResponse>(logger, async (call) =>
      create(DeletePlanResponseSchema, { deleted: await deletePlan(rules, callerOf(call), call.request.name) }),
    ),
    listPlans: unary<ListPlansRequest, ListPlansResponse>(logger, async (call) => {
      const page = await listPlans(rules, callerOf(call), call.request);
      return create(ListPlansResponseSchema, {
        plans: page.items.map(planMessage),
        nextPageToken: page.nextPageToken,
      });
    }),
    setUserPolicy: unary<SetUserPolicyRequest, SetUserPolicyResponse>(logger, async (call) => {
      const { userId, dryRun } = call.request;
      const input = assignmentInput(call.request.assignment);
      if (dryRun) {
        const forecast = await forecastUserPolicy(rules, callerOf(call), userId, input);
        return create(SetUserPolicyResponseSchema, {
          userPolicy: userPolicyMessage(userId, forecast.assignment),
          dryRun: true,
          forecast: create(DrainForecastSchema, {
            queued: forecast.queued,
            lastStartNow: forecast.lastStartNow === undefined ? undefined : timestampFromMs(forecast.lastStartNow),
            lastStartProposed:
              forecast.lastStartProposed === undefined ? undefined : timestampFromMs(forecast.lastStartProposed),
            current: policyMessage(forecast.current),
            proposed: policyMessage(forecast.proposed),
          }),
        });
      }
      const assignment = await setUserPolicy(rules, callerOf(call), userId, input);
      return create(SetUserPolicyResponseSchema, { userPolicy: userPolicyMessage(userId, assignment) });
    }),
    getUserPolicy: unary<GetUserPolicyRequest, GetUserPolicyResponse>(logger, async (call) => {
      const { userId } = call.request;
      const effective = await getUserPolicy(rules, callerOf(call), userId);
      return create(GetUserPolicyResponseSchema, {
        userId,
        effective: policyMessage(effective.policy),
        source: SOURCES[effective.source],
        plan: effective.plan ?? "",
        assignment: effective.assignment === undefined ? undefined : userPolicyMessage(userId, effective.assignment),
      });
    }),
    deleteUserPolicy: unary<DeleteUserPolicyRequest, DeleteUserPolicyResponse>(logger, async (call) =>
      create(DeleteUserPolicyResponseSchema, {
        deleted: await deleteUserPolicy(rules, callerOf(call), call.request.userId),
      }),
    ),
    setGlobalLimits: unary<SetGlobalLimitsRequest, SetGlobalLimitsResponse>(logger, async (call) =>
      create(SetGlobalLimitsResponseSchema, {
        globalLimits: await setGlobalLimits(rules, callerOf(call), call.request.limits),
      }),
    ),
    getGlobalLimits: unary<GetGlobalLimitsRequest, GetGlobalLimitsResponse>(logger, async (call) =>
      create(GetGlobalLimitsResponseSchema, { globalLimits: await getGlobalLimits(rules, callerOf(call)) }),
    ),
    deleteGlobalLimits: unary<DeleteGlobalLimitsRequest, DeleteGlobalLimitsResponse>(logger, async (call) =>
      create(DeleteGlobalLimitsResponseSchema, { deleted: await deleteGlobalLimits(rules, callerOf(call)) }),
    ),
    listUserPolicies: unary<ListUserPoliciesRequest, ListUserPoliciesResponse>(logger, async (call) => {
      const page = await listUserPolicies(rules, callerOf(call), call.request);
      return create(ListUserPoliciesResponseSchema, {
        userPolicies: page.items.map((entry) => userPolicyMessage(entry.userId, entry.assignment)),
        nextPageToken: page.nextPageToken,
      });
    }),
  };
}

const SOURCES = { override: PolicySource.OVERRIDE, plan: PolicySource.PLAN, default: PolicySource.DEFAULT } as const;

function callerOf(call: ServerUnaryCall<unknown, unknown>) {
  return callContextOf(call).caller;
}

function unary<Req, Res>(logger: Logger, handle: (call: ServerUnaryCall<Req, Res>) => Promise<Res>) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    handle(call).then(
      (response) => callback(null, response),
      (error: unknown) => callback(reportFailure(logger, error, { method: call.getPath() }), null),
    );
  };
}

function assignmentInput(assignment: SetUserPolicyRequest["assignment"]): AssignmentInput {
  switch (assignment.case) {
    case "plan":
      return { plan: assignment.value };
    case "override":
      return { override: assignment.value };
    default:
      return undefined;
  }
}

function policyMessage(policy: CorePolicy): Policy {
  return create(PolicySchema, { limits: formatRatePolicy(policy.windows), maxRunning: policy.maxRunning });
}

function planMessage(plan: NamedPlan) {
  return create(PlanSchema, { name: plan.name, policy: policyMessage(plan.policy), fromConfig: plan.fromConfig });
}

function userPolicyMessage(userId: string, assignment: PolicyAssignment): UserPolicy {
  return create(UserPolicySchema, {
    userId,
    assignment:
      assignment.kind === "plan"
        ? { case: "plan", value: assignment.plan }
        : { case: "override", value: policyMessage(assignment.policy) },
  });
}
