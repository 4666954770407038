--[[
  renew: extend the leases of tasks this process is still running. A lease
  that is gone (it ran out and the task was handed on) is not revived.

  KEYS[1]  leases sorted set
  ARGV[1]  lease length, ms
  ARGV[2..] task ids
  Returns  how many leases were extended
]]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local renewed = 0
for i = 2, #ARGV do
  renewed = renewed + redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[1]), ARGV[i])
end
return renewed
