--[[
  dead-letter: a failed attempt, and a task that has used its last attempt
  moving to its user's dead-letter list (newest first, trimmed at the cap),
  with the counters WatchQueue reads and a progress message.
]]
--- @include "task-fields"

-- Counts one failed attempt of a task and keeps its error.
local function attemptFailed(task, stats, totals, err)
  redis.call('HSET', task, FIELD_ERROR, err)
  redis.call('HINCRBY', stats, 'f', 1)
  redis.call('HINCRBY', totals, 'f', 1)
end

-- Moves a task whose last attempt failed to its user's dead-letter list;
-- publish is PUBLISH or SPUBLISH (a Cluster's sharded pub/sub).
local function deadLetter(task, taskId, userId, dead, cap, stats, totals, publish, progress, now)
  redis.call('HSET', task, FIELD_STATE, STATE_DEAD, FIELD_FINISHED, now)
  redis.call('LPUSH', dead, taskId)
  redis.call('LTRIM', dead, 0, tonumber(cap) - 1)
  redis.call('HINCRBY', stats, 'd', 1)
  redis.call('HINCRBY', totals, 'd', 1)
  redis.call(publish, progress, userId)
end
