--[[
  snapshot: one user's queue as WatchQueue reports it, read in one step so
  the counts agree with each other and with the windows' state.

  KEYS[1]   the user's queue list
  KEYS[2]   the user's stats hash
  KEYS[3]   due-users sorted set
  KEYS[4]   paused-users set
  KEYS[5]   policies hash (user id -> plan or override)
  KEYS[6]   plans hash (plan name -> spec)
  KEYS[7..] rate-limiter-flexible counters, one per duration in ARGV[3..]
  ARGV[1]   user id
  ARGV[2]   the fallback policy spec (TOLLGATE_RATE_LIMITS)
  ARGV[3..] the duration (whole seconds) of each counter in KEYS[7..]
  Returns   {now, queued, running, waiting to retry, succeeded, failed,
            dead, due moment or -1, generation, paused (1 or 0), cancelled,
            requeued, delayed, expired, policy spec, covered (1 or 0),
            count 1, pttl 1, count 2, pttl 2, ...}: the user's effective
            policy (includes/policy) and, when the declared counters cover
            it (else covered is 0: read again with its windows), one count
            and pttl per window of it (pttl -2 where no window is open). The counters'
            generation (includes/user-stats) is the stats hash's moment of
            creation, -1 when there is no hash, 0 for a hash written before
            generations were stamped.
]]
--- @include "time"
--- @include "window"
--- @include "policy"

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
local policy = resolvePolicy(KEYS[5], KEYS[6], ARGV[1], ARGV[2])
out[#out + 1] = policy.spec
if not bindWindows(policy, declaredWindows(7, 3, #KEYS - 6)) then
  out[#out + 1] = 0
  return out
end
out[#out + 1] = 1
for _, window in ipairs(policy.windows) do
  local count, pttl = windowRead(window.key)
  out[#out + 1] = count
  out[#out + 1] = pttl
end
return out
