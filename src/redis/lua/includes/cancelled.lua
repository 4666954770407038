--[[
  cancelled: a task's record ending cancelled (CancelTask, PurgeQueue, or a
  running task whose cancel was requested ending its attempt): finished now,
  its payload dropped, expiring the retention after, as a succeeded task's.
  Every task that ends cancelled is counted here, the one place: c (cancelled,
  only ever grows) goes up in the user's stats hash and in the partition's
  totals. The caller settles the stats hash (includes/user-stats).
]]
--- @include "task-fields"
--- @include "user-stats"

-- Ends a task's record cancelled and counts it in `stats` and `totals`;
-- `retention` in seconds.
local function endCancelled(record, now, retention, stats, totals)
  redis.call('HSET', record, FIELD_STATE, STATE_CANCELLED, FIELD_FINISHED, now)
  redis.call('HDEL', record, FIELD_PAYLOAD, FIELD_CLAIM, FIELD_CANCEL_REQUESTED)
  redis.call('EXPIRE', record, retention)
  statsAdd(stats, 'c', 1, now)
  redis.call('HINCRBY', totals, 'c', 1)
end
