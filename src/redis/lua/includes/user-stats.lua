--[[
  user-stats: a user's stats hash (keys.ts stats(): r running, w waiting to
  retry, n delayed, p queued above priority 0 (p1 … p9 per level:
  includes/priority), ok, f, d, c cancelled, rq requeued, x expired) and its
  lifetime. A user seen once must not cost a key forever, so the hash lives
  while the user has a task running, waiting to retry, delayed or queued
  above priority 0 (its gauges r, w, n and p are then needed) and expires a
  retention after the change that left it none; ok, f, d, c, rq and x then
  start again from zero.
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

-- A gauge just went above 0 without a settle to follow (a task queued above
-- priority 0): the hash must outlive any expiry an earlier settle set.
local function statsKeep(stats)
  redis.call('PERSIST', stats)
end

-- After a script changed the user's counters: kept while a task runs, waits
-- to retry, is delayed or is queued above priority 0, else expires
-- `retention` seconds from now.
local function statsSettle(stats, retention)
  local gauges = redis.call('HMGET', stats, 'r', 'w', 'n', 'p')
  if tonumber(gauges[1] or '0') > 0 or tonumber(gauges[2] or '0') > 0 or tonumber(gauges[3] or '0') > 0
      or tonumber(gauges[4] or '0') > 0 then
    redis.call('PERSIST', stats)
  else
    redis.call('EXPIRE', stats, retention)
  end
end
