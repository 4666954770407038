--[[
  window: one rate window as rate-limiter-flexible keeps it (a RateLimiterRedis
  counter), so the scripts and the library share one source of truth. A window
  is a key that opens at its first start and expires its duration later; its
  value counts the starts in it. It is full when the count is at the limit,
  and then has room again once the key is gone: a key lives through its last
  ms, hence PTTL + 1. src/core/fixed-window.ts states the same rule for the
  start schedule. A key with no expiry (never written so) does not block.
]]

-- The window's count and ms to live; pttl is -2 when no window is open.
local function windowRead(key)
  local count = tonumber(redis.call('GET', key) or '0')
  if count == 0 then
    return 0, -2
  end
  return count, redis.call('PTTL', key)
end

-- ms until a window read as (count, pttl) has room for a start of `units`
-- (1 when absent): 0 when it has room now. An empty window always has room:
-- a cost above the limit (possible only after the limit shrank) fills it.
local function windowWait(count, pttl, limit, units)
  if count == 0 or count + (units or 1) <= limit then
    return 0
  end
  return math.max(0, pttl + 1)
end

-- ms until every one of a user's `count` windows has room (0: they have now):
-- window k's key is KEYS[keyBefore + k] and its limit ARGV[limitBefore + k].
local function windowsWait(count, keyBefore, limitBefore)
  local wait = 0
  for k = 1, count do
    local used, pttl = windowRead(KEYS[keyBefore + k])
    wait = math.max(wait, windowWait(used, pttl, tonumber(ARGV[limitBefore + k])))
  end
  return wait
end

-- Uses `units` (1 when absent) of a window read as (count, pttl) in this
-- script: rate-limiter-flexible's SET key 0 EX duration NX then INCRBY,
-- folded into one command since the count was just read (no key expires
-- within a script). Returns the window's new count and pttl.
local function windowUse(key, count, pttl, seconds, units)
  units = units or 1
  if count == 0 then
    redis.call('SET', key, units, 'EX', seconds)
    return units, tonumber(seconds) * 1000
  end
  redis.call('INCRBY', key, units)
  return count + units, pttl
end

-- Appends {count, pttl} of each window key in KEYS[first..] to a reply.
local function appendWindows(out, first)
  for i = first, #KEYS do
    local count, pttl = windowRead(KEYS[i])
    out[#out + 1] = count
    out[#out + 1] = pttl
  end
  return out
end
