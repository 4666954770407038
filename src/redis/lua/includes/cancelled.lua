--[[
  cancelled: a task's record ending cancelled (CancelTask, PurgeQueue, or a
  running task whose cancel was requested ending its attempt): finished now,
  its payload dropped, expiring the retention after, as a succeeded task's.
]]
--- @include "task-fields"

-- Ends a task's record cancelled; `retention` in seconds.
local function endCancelled(record, now, retention)
  redis.call('HSET', record, FIELD_STATE, STATE_CANCELLED, FIELD_FINISHED, now)
  redis.call('HDEL', record, FIELD_PAYLOAD, FIELD_CLAIM, FIELD_CANCEL_REQUESTED)
  redis.call('EXPIRE', record, retention)
end
