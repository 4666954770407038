--[[
  resume: resumes one user's queue. The user leaves the paused-users set
  and, when its queue holds a task and it is not due already, it is
  scheduled as admit schedules a new head (includes/heads): due when every
  window has room, the drainers woken for that moment. The windows decide
  from then on, as always, so a resumed queue drains at the policy's pace.
  Idempotent: resuming a queue that is not paused changes nothing but a
  user missing from the due users with tasks queued, which it mends.

  KEYS[1]   paused-users set
  KEYS[2]   due-users sorted set
  KEYS[3]   heads hash (user id -> head task id)
  KEYS[4]   the user's queue list
  KEYS[5]   the user's stats hash
  KEYS[6 .. 5+W]  the user's W rate-limiter-flexible window counters, in policy order
  ARGV[1]   user id
  ARGV[2]   channel on which drainers are woken when a user becomes due
  ARGV[3]   progress channel (the user id is published when its counts change)
  ARGV[4]   "SPUBLISH" on a Redis Cluster (sharded pub/sub), else "PUBLISH"
  ARGV[5]   W: windows per user
  then per window: its limit (ARGV[6 .. 5+W])
  Returns   {tasks waiting to start: queued plus waiting to retry}
]]
--- @include "time"
--- @include "window"
--- @include "heads"

local userId, PUBLISH = ARGV[1], ARGV[4]
local windowCount = tonumber(ARGV[5])
redis.call('SREM', KEYS[1], userId)
local head = redis.call('LINDEX', KEYS[4], 0)
if head and not redis.call('ZSCORE', KEYS[2], userId) then
  local now = currentMs()
  local wait = windowsWait(windowCount, 5, 5)
  scheduleNewHead(KEYS[2], KEYS[3], userId, head, now + wait, PUBLISH, ARGV[2])
end
redis.call(PUBLISH, ARGV[3], userId)
local waiting = tonumber(redis.call('HGET', KEYS[5], 'w') or '0')
return {redis.call('LLEN', KEYS[4]) + math.max(0, waiting)}
