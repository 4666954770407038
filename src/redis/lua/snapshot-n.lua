--[[
  snapshot: one user's queue as WatchQueue reports it, read in one step so
  the counts agree with each other and with the windows' state.

  KEYS[1]   the user's queue list
  KEYS[2]   the user's stats hash
  KEYS[3]   due-users sorted set
  KEYS[4]   paused-users set
  KEYS[5..] the user's rate-limiter-flexible window counters, in policy order
  ARGV[1]   user id
  Returns   {now, queued, running, waiting to retry, succeeded, failed,
            dead, due moment or -1, generation, paused (1 or 0), cancelled,
            requeued, delayed, expired, count 1, pttl 1, count 2, pttl 2,
            ...} (pttl -2 where no window is open). The counters'
            generation (includes/user-stats) is the stats hash's moment of
            creation, -1 when there is no hash, 0 for a hash written before
            generations were stamped.
]]
--- @include "time"
--- @include "window"

local now = currentMs()
local stats = redis.call('HMGET', KEYS[2], 'r', 'w', 'ok', 'f', 'd', 'e', 'c', 'rq', 'n', 'x')
local generation = -1
if stats[6] then
  generation = tonumber(stats[6])
elseif redis.call('EXISTS', KEYS[2]) == 1 then
  generation = 0
end
local due = redis.call('ZSCORE', KEYS[3], ARGV[1])
local out = {
  now,
  redis.call('LLEN', KEYS[1]),
  tonumber(stats[1] or '0'),
  tonumber(stats[2] or '0'),
  tonumber(stats[3] or '0'),
  tonumber(stats[4] or '0'),
  tonumber(stats[5] or '0'),
  due and tonumber(due) or -1,
  generation,
  redis.call('SISMEMBER', KEYS[4], ARGV[1]),
  tonumber(stats[7] or '0'),
  tonumber(stats[8] or '0'),
  tonumber(stats[9] or '0'),
  tonumber(stats[10] or '0'),
}
return appendWindows(out, 5)
