--[[
  global-reserve: takes units of the global windows (windows over every user
  together, in their own slot) for a requester about to start tasks: a
  partition's claim, or a start at Submit. A partition's scripts cannot touch
  this slot on a Redis Cluster, so the units are taken here first and what
  the start did not use is given back (global-refund-n); taking before using
  can leave units unused for a moment, never start more than a window allows.
  Units go to the longest waiting first: a requester asks for one unit per
  user it would start, each with the moment that user became due; one the
  windows held back is recorded with the due moments it still wants
  (KEYS[2]), and a user gets a unit only if the room covers every waiting
  user due before it too. So when the global limit binds, users are served in
  the order they became due, across partitions and hosts, not by which
  partition asks first. A record not refreshed for the longest window's
  duration and 2 s is dropped (its process is gone).
  Each start is one unit (a task's cost counts in its user's windows only).

  KEYS[1]   the stored global spec (absent: ARGV[1]; "" : no global limit)
  KEYS[2]   waiting requesters hash (requester -> "updated|due,due,...")
  KEYS[3..] global window counters, one per duration in ARGV[4 + n..]
  ARGV[1]   the host's TOLLGATE_GLOBAL_LIMITS spec ("" for none)
  ARGV[2]   requester (a partition number, as text), or "" for a start at
            Submit, which is never recorded as waiting (held back, its task
            queues and its partition's claim asks again)
  ARGV[3]   n: units wanted
  ARGV[4..3 + n] the due moment (ms) of each, earliest first
  then      the duration (whole seconds) of each counter in KEYS[3..]
  Returns   {granted, wait ms, spec, expiry 1, expiry 2, ...}: granted (the
            first that many of the units asked for) is -1
            when the declared counters do not cover the spec (nothing
            taken: run again with its windows); wait is ms until the windows
            have room again when fewer were granted than wanted (0
            otherwise); the expiries (ms, per window of the spec) identify
            the windows the units came from, for global-refund-n.
            With no global limit, everything wanted is granted.
]]
--- @include "time"
--- @include "window"
--- @include "policy"

local now = currentMs()
local spec = redis.call('GET', KEYS[1]) or ARGV[1]
local wanted = tonumber(ARGV[3])
if spec == '' then
  return {wanted, 0, ''}
end
local policy = parsePolicySpec(spec)
local myDues = {}
for i = 1, wanted do
  myDues[i] = tonumber(ARGV[3 + i])
end
if not bindWindows(policy, declaredWindows(3, 4 + wanted, #KEYS - 2)) then
  return {-1, 0, spec}
end

local room, longest = math.huge, 0
local read = {}
for k, window in ipairs(policy.windows) do
  local count, pttl = windowRead(window.key)
  read[k] = {count, pttl}
  room = math.min(room, math.max(0, window.limit - count))
  longest = math.max(longest, window.seconds * 1000)
end

-- The due moments other requesters still wait with.
local me = ARGV[2]
local others = {}
local entries = redis.call('HGETALL', KEYS[2])
for i = 1, #entries, 2 do
  local id = entries[i]
  local updated, dues = string.match(entries[i + 1], '^(%d+)|(.*)$')
  if not updated or tonumber(updated) < now - longest - 2000 then
    redis.call('HDEL', KEYS[2], id)
  elseif id ~= me then
    for due in string.gmatch(dues, '(-?%d+)') do
      others[#others + 1] = tonumber(due)
    end
  end
end
table.sort(others)

-- The k-th unit is granted when the room covers it and every other user due before it.
local granted, before = 0, 0
for k = 1, wanted do
  while before < #others and others[before + 1] < myDues[k] do
    before = before + 1
  end
  if before + k > room then
    break
  end
  granted = k
end
local out = {granted, 0, spec}
local wait = 0
for k, window in ipairs(policy.windows) do
  local count, pttl = read[k][1], read[k][2]
  if granted > 0 then
    count, pttl = windowUse(window.key, count, pttl, window.seconds, granted)
  end
  wait = math.max(wait, windowWait(count, pttl, window.limit))
  out[#out + 1] = count > 0 and now + pttl or 0
end
if granted < wanted and me ~= '' then
  local left = {}
  for k = granted + 1, wanted do
    left[#left + 1] = string.format('%d', myDues[k])
  end
  redis.call('HSET', KEYS[2], me, string.format('%d', now) .. '|' .. table.concat(left, ','))
elseif me ~= '' then
  redis.call('HDEL', KEYS[2], me)
end
if granted < wanted and out[2] == 0 then
  out[2] = wait > 0 and wait or 25
end
return out
