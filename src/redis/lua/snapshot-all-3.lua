--[[
  snapshot-all: every queue at once, as an admin's WatchQueue reports it.

  KEYS[1]  totals hash
  KEYS[2]  leases sorted set (one entry per running task)
  KEYS[3]  due-users sorted set
  Returns  {now, queued or waiting to retry, running, succeeded, failed, dead,
           earliest due moment or -1}
]]
--- @include "time"

local now = currentMs()
local totals = redis.call('HMGET', KEYS[1], 'q', 'ok', 'f', 'd')
local head = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
return {
  now,
  math.max(0, tonumber(totals[1] or '0')),
  redis.call('ZCARD', KEYS[2]),
  tonumber(totals[2] or '0'),
  tonumber(totals[3] or '0'),
  tonumber(totals[4] or '0'),
  head[2] and tonumber(head[2]) or -1,
}
