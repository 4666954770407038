--[[
  renew: extend the leases of tasks this process is still running. A lease
  that is gone (it ran out and the task was handed on) is not revived.

  KEYS[1]  leases sorted set
  ARGV[1]  lease length, ms
  ARGV[2..] the tasks' members in the leases set (task id:user id)
  Returns  how many leases were extended
]]
--- @include "time"

local now = currentMs()
local renewed = 0
for i = 2, #ARGV do
  renewed = renewed + redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[1]), ARGV[i])
end
return renewed
