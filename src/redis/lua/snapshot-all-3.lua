--[[
  snapshot-all: every queue of one partition at once; an admin's WatchQueue
  sums the partitions.

  KEYS[1]  totals hash
  KEYS[2]  leases sorted set (one entry per running task)
  KEYS[3]  due-users sorted set
  Returns  {now, queued or waiting to retry, running, succeeded, failed, dead,
           earliest due moment or -1, cancelled, requeued, expired}
]]
--- @include "time"
--- @include "schedule"

local now = currentMs()
local totals = redis.call('HMGET', KEYS[1], 'q', 'ok', 'f', 'd', 'c', 'rq', 'x')
return {
  now,
  math.max(0, tonumber(totals[1] or '0')),
  redis.call('ZCARD', KEYS[2]),
  tonumber(totals[2] or '0'),
  tonumber(totals[3] or '0'),
  tonumber(totals[4] or '0'),
  earliest(KEYS[3]),
  tonumber(totals[5] or '0'),
  tonumber(totals[6] or '0'),
  tonumber(totals[7] or '0'),
}
