--[[
  lease: whether an attempt still holds its task's lease. A lease that ran out
  was handed on (claim put the task back), and the task's current attempt owns
  it now; an older attempt may then record nothing.
]]
--- @include "task-fields"

local function holdsLease(leases, task, member, attempt)
  return redis.call('ZSCORE', leases, member) ~= false and redis.call('HGET', task, FIELD_ATTEMPTS) == attempt
end
