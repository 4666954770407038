--[[
  schedule: the earliest moment in a sorted set of moments (a partition's due
  users, retries, delayed tasks or leases), which tells a drainer when to
  look next.
]]

-- The lowest score in the set, or -1 when it is empty.
local function earliest(key)
  local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if head[2] then
    return tonumber(head[2])
  end
  return -1
end

-- The lowest score in either set, or -1 when both are empty.
local function earliestOf(first, second)
  local a, b = earliest(first), earliest(second)
  if a < 0 then
    return b
  end
  if b < 0 then
    return a
  end
  return math.min(a, b)
end
