--[[
  time: the Redis server's clock in ms, the one clock every script and every
  host agrees on.
]]
local function currentMs()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
