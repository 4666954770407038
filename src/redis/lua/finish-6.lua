--[[
  finish: record the end of one attempt and release its lease. A failed
  attempt is retried after a backoff, or, when it was the last attempt, the
  task moves to its user's dead-letter list. An attempt that no longer holds
  its lease (it ran out and the task was handed on) records nothing: the
  task's current attempt owns it now.

  KEYS[1]  task hash
  KEYS[2]  leases sorted set
  KEYS[3]  retries sorted set
  KEYS[4]  the user's dead-letter list
  KEYS[5]  the user's stats hash
  KEYS[6]  totals hash
  ARGV[1]  task id
  ARGV[2]  attempt number that ran
  ARGV[3]  "ok" or "failed"
  ARGV[4]  error message ("" when ok)
  ARGV[5]  how long to keep a finished task's record, seconds
  ARGV[6]  most attempts per task
  ARGV[7]  retry backoff, ms
  ARGV[8]  dead-letter list cap
  ARGV[9]  progress channel
  ARGV[10] user id
  ARGV[11] channel on which drainers are woken (a retry's moment is published)
  Returns  1 succeeded, 2 retry scheduled, 3 dead-lettered, 0 lease lost
]]
if redis.call('ZSCORE', KEYS[2], ARGV[1]) == false
    or redis.call('HGET', KEYS[1], 'a') ~= ARGV[2] then
  return 0
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[5], 'r', -1)
redis.call('PUBLISH', ARGV[9], ARGV[10])
if ARGV[3] == 'ok' then
  redis.call('HSET', KEYS[1], 's', 'ok', 'fin', now)
  -- Nobody reads a finished task's payload; keep only its record.
  redis.call('HDEL', KEYS[1], 'p')
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  redis.call('HINCRBY', KEYS[5], 'ok', 1)
  redis.call('HINCRBY', KEYS[6], 'ok', 1)
  return 1
end
redis.call('HSET', KEYS[1], 'err', ARGV[4])
redis.call('HINCRBY', KEYS[5], 'f', 1)
redis.call('HINCRBY', KEYS[6], 'f', 1)
if tonumber(ARGV[2]) < tonumber(ARGV[6]) then
  redis.call('HSET', KEYS[1], 's', 'f', 'retry', now + tonumber(ARGV[7]))
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[7]), ARGV[1])
  redis.call('HINCRBY', KEYS[5], 'w', 1)
  redis.call('HINCRBY', KEYS[6], 'q', 1)
  redis.call('PUBLISH', ARGV[11], now + tonumber(ARGV[7]))
  return 2
end
redis.call('HSET', KEYS[1], 's', 'd', 'fin', now)
redis.call('LPUSH', KEYS[4], ARGV[1])
redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[8]) - 1)
redis.call('HINCRBY', KEYS[5], 'd', 1)
redis.call('HINCRBY', KEYS[6], 'd', 1)
return 3
