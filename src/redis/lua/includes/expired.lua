--[[
  expired: a task not started by its start_by (FIELD_START_BY) ends expired
  instead of running late. Claim checks it when it is about to start the
  task (at the head of its queue) or moves it out of the delayed set; a task
  with an attempt started (a retry, a recovered lease) is past that point.
  Its record ends as a cancelled one does: finished now, its payload
  dropped, expiring the retention after. The caller counts it (x in the
  user's stats and the partition's totals, q down) and publishes progress.
]]
--- @include "task-fields"

-- Whether the task, with no attempt started, has its start_by before `now` (ms).
local function pastStartBy(record, now)
  local fields = redis.call('HMGET', record, FIELD_START_BY, FIELD_ATTEMPTS)
  if not fields[1] then
    return false
  end
  return tonumber(fields[2] or '0') == 0 and tonumber(fields[1]) < now
end

-- Ends a task's record expired; `retention` in seconds.
local function endExpired(record, now, retention)
  redis.call('HSET', record, FIELD_STATE, STATE_EXPIRED, FIELD_FINISHED, now)
  redis.call('HDEL', record, FIELD_PAYLOAD, FIELD_CLAIM)
  redis.call('EXPIRE', record, retention)
end
