--[[
  global-refund: gives back global units that global-reserve-n granted but
  the start did not use (a user's own windows or cap held it, or nothing was
  due after all), so they are not lost until the window resets. Only to the
  window they came from: one that has since expired and opened again is left
  alone (its count is another window's), so a refund can never let more
  starts into a window than its limit.

  KEYS[1]   the first global window counter (as reserved)
  KEYS[2..] the others, in the same order
  ARGV[1]   units to give back
  ARGV[1 + k] the expiry moment (ms) reserve reported for KEYS[k] (0: none open)
  Returns   how many counters were given units back
]]
--- @include "time"
--- @include "window"

local now = currentMs()
local units = tonumber(ARGV[1])
local refunded = 0
for k, key in ipairs(KEYS) do
  local expiry = tonumber(ARGV[1 + k])
  local count, pttl = windowRead(key)
  -- The same window: a new one would end at least its duration after the old one.
  if expiry > 0 and count > 0 and pttl > 0 and math.abs(now + pttl - expiry) < 200 then
    redis.call('DECRBY', key, math.min(units, count))
    refunded = refunded + 1
  end
end
return refunded
