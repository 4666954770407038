--[[
  user-stats: a user's stats hash (keys.ts stats(): r running, w waiting to
  retry, n delayed, ok, f, d, c cancelled, rq requeued, x expired) and its
  lifetime. A user seen once must not cost a key forever, so the hash lives
  while the user has a task running, waiting to retry or delayed (its gauges
  r, w and n are then needed) and expires a retention after the change that
  left it none; ok, f, d, c, rq and x then start again from zero.
  So that a reader can tell (WatchQueue counts since its stream began), a new
  hash is stamped with its generation: e, the moment (ms) it was created.
]]

-- Adds `by` to one of the user's counters, stamping a new hash's generation.
local function statsAdd(stats, field, by, now)
  if redis.call('EXISTS', stats) == 0 then
    redis.call('HSET', stats, 'e', now)
  end
  redis.call('HINCRBY', stats, field, by)
end

-- After a script changed the user's counters: kept while a task runs, waits
-- to retry or is delayed, else expires `retention` seconds from now.
local function statsSettle(stats, retention)
  local gauges = redis.call('HMGET', stats, 'r', 'w', 'n')
  if tonumber(gauges[1] or '0') > 0 or tonumber(gauges[2] or '0') > 0 or tonumber(gauges[3] or '0') > 0 then
    redis.call('PERSIST', stats)
  else
    redis.call('EXPIRE', stats, retention)
  end
end
