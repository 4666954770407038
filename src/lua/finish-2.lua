--[[
  finish: record the end of a task's attempt and release its lease.

  KEYS[1]  task hash
  KEYS[2]  leases sorted set
  ARGV[1]  task id
  ARGV[2]  outcome: "ok", or "dead" (ARGV[4] holds the error)
  ARGV[3]  how long to keep the finished record, seconds
  ARGV[4]  error message, or empty
  Returns  1 if the task was finished, 0 if no such task exists
]]
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
if ARGV[2] == 'ok' then
  redis.call('HSET', KEYS[1], 's', 'ok', 'fin', now)
  -- Nobody reads a finished task's payload; keep only its record.
  redis.call('HDEL', KEYS[1], 'p')
else
  redis.call('HSET', KEYS[1], 's', 'd', 'fin', now, 'err', ARGV[4])
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
