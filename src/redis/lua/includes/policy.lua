--[[
  policy: a user's effective policy, resolved inside the script at every
  start, so a change made through PolicyService binds the user's next start
  on every host at once. Resolution: the partition's policies hash (user id
  -> "plan:<name>" or "limits:<spec>", keys.ts policies()), then for a plan
  its spec in the partition's plans hash (a deleted plan falls through to the
  default), else the plan "default" stored there, else the caller's fallback
  (the host's TOLLGATE_RATE_LIMITS). A spec is "<limit>/<n><unit>,..."
  (units s, m, h, d), then optionally ";<max running>" (keys.ts plans()).

  A window counter is keyed by its duration (keys.ts windowPrefix), so the
  caller must declare the counters of the user's windows before the script
  runs: it declares the durations it expects (from the last policy it saw)
  and bindWindows says whether they cover the policy found here. When they
  do not (the policy changed since), the script starts nothing and tells
  the caller the policy it found, and the caller runs it again.
]]

--- @include "task-fields"

local POLICY_UNIT_SECONDS = {s = 1, m = 60, h = 3600, d = 86400}

-- {spec, windows = {{limit, seconds}...}, maxRunning (0: no cap)} of a spec.
local function parsePolicySpec(spec)
  local windowsText, maxText = string.match(spec, '^([^;]*);?(%d*)$')
  local windows = {}
  for limit, n, unit in string.gmatch(windowsText or '', '(%d+)/(%d*)([smhd])') do
    windows[#windows + 1] = {limit = tonumber(limit), seconds = (n == '' and 1 or tonumber(n)) * POLICY_UNIT_SECONDS[unit]}
  end
  return {spec = spec, windows = windows, maxRunning = (maxText and maxText ~= '') and tonumber(maxText) or 0}
end

-- The user's effective policy (see above).
local function resolvePolicy(policies, plans, userId, fallback)
  local entry = redis.call('HGET', policies, userId)
  local spec
  if entry then
    if string.sub(entry, 1, 7) == 'limits:' then
      spec = string.sub(entry, 8)
    elseif string.sub(entry, 1, 5) == 'plan:' then
      spec = redis.call('HGET', plans, string.sub(entry, 6))
    end
  end
  return parsePolicySpec(spec or redis.call('HGET', plans, 'default') or fallback)
end

-- Sets each window's key from the declared counters: `declared` maps a
-- duration in seconds to its counter's key. False when one is not declared.
local function bindWindows(policy, declared)
  for _, window in ipairs(policy.windows) do
    window.key = declared[window.seconds]
    if not window.key then
      return false
    end
  end
  return true
end

-- The declared counters: KEYS[firstKey + i - 1] counts the window of
-- ARGV[firstArg + i - 1] seconds, for i = 1 … count.
local function declaredWindows(firstKey, firstArg, count)
  local declared = {}
  for i = 1, count do
    declared[tonumber(ARGV[firstArg + i - 1])] = KEYS[firstKey + i - 1]
  end
  return declared
end

-- ms until every window of the bound policy has room for `cost` units (0: now),
-- and what it read ({count, pttl} per window), which policyUse needs.
local function policyWait(policy, cost)
  local longest, read = 0, {}
  for k, window in ipairs(policy.windows) do
    local count, pttl = windowRead(window.key)
    read[k] = {count, pttl}
    longest = math.max(longest, windowWait(count, pttl, window.limit, cost))
  end
  return longest, read
end

-- Uses `cost` units of every window read by policyWait. Returns ms until
-- every window has room again for a start of one unit: the next task may
-- cost less, and one that costs more is held then (never started late).
local function policyUse(policy, read, cost)
  local longest = 0
  for k, window in ipairs(policy.windows) do
    -- A cost above the limit (the limit shrank after the task was queued)
    -- fills the window, never more.
    local count, pttl = windowUse(window.key, read[k][1], read[k][2], window.seconds, math.min(cost, window.limit))
    read[k] = {count, pttl}
    longest = math.max(longest, windowWait(count, pttl, window.limit))
  end
  return longest
end

-- Whether the user is at its cap of running tasks (stats r, includes/user-stats).
local function atRunningCap(policy, stats)
  return policy.maxRunning > 0 and tonumber(redis.call('HGET', stats, 'r') or '0') >= policy.maxRunning
end

-- ms a user held by its cap waits before it is looked at again: a lease
-- (`leaseMs`), by when one of its running tasks has ended or lost its lease
-- unless renewed; finish makes it due as soon as one ends (the stats hash's
-- cap mark says it waits). 0 when the cap does not bind.
local function capWait(capped, stats, leaseMs)
  if not capped then
    return 0
  end
  redis.call('HSET', stats, 'cap', 1)
  return tonumber(leaseMs)
end

-- Stores a task's cost on its record, for claims and retries; 1 is the default and not stored.
local function storeCost(task, cost)
  if cost ~= 1 then
    redis.call('HSET', task, FIELD_COST, cost)
  end
end

-- A task's cost, from its record.
local function costOf(task)
  return tonumber(redis.call('HGET', task, FIELD_COST) or '1')
end
